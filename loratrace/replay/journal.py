"""The resume journal: which (model, example id) pairs of a replay are finished, durably.

A pair is appended only after its spans were handed to the store or the collector and acknowledged
(``runner``), and each append is flushed and ``fsync``-ed, so an interrupted replay (a kill, a crash, a reboot)
resumes with exactly the pairs whose spans are kept. A line cut short by a kill is ignored.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable
from pathlib import Path

Pair = tuple[str, str]
"""(model label, example id)."""


class Journal:
    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)

    def finished(self) -> set[Pair]:
        if not self.path.exists():
            return set()
        pairs: set[Pair] = set()
        with open(self.path, encoding="utf-8") as handle:
            for line in handle:
                try:
                    model, example_id = json.loads(line)
                except (ValueError, TypeError):
                    continue  # the last line of a killed run, cut mid-write
                pairs.add((str(model), str(example_id)))
        return pairs

    def append(self, pairs: Iterable[Pair]) -> None:
        lines = "".join(json.dumps([model, example_id]) + "\n" for model, example_id in pairs)
        if not lines:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        if self._ends_mid_line():
            lines = "\n" + lines  # a killed run's cut line stays alone on its line, and is ignored
        with open(self.path, "a", encoding="utf-8") as handle:
            handle.write(lines)
            handle.flush()
            os.fsync(handle.fileno())

    def _ends_mid_line(self) -> bool:
        try:
            with open(self.path, "rb") as handle:
                handle.seek(0, os.SEEK_END)
                if handle.tell() == 0:
                    return False
                handle.seek(-1, os.SEEK_END)
                return handle.read(1) != b"\n"
        except FileNotFoundError:
            return False
