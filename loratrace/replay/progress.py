"""Progress bars, one per model, with rate and ETA (``tqdm``).

``tqdm`` rather than ``rich``: one small pure-Python dependency that draws several positioned bars with rate and
ETA on stderr and turns itself off when stderr is not a terminal (CI logs stay clean); ``rich`` would bring a
rendering stack (pygments, markdown-it) for the same bars.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from tqdm import tqdm

from loratrace.replay.journal import Pair


class Progress:
    def __init__(
        self, labels: Sequence[str], *, total: int, done: set[Pair], examples: Sequence[Any], enabled: bool | None
    ) -> None:
        ids = {example.id for example in examples}
        self._bars = {
            label: tqdm(
                total=total,
                initial=sum(1 for model, example_id in done if model == label and example_id in ids),
                desc=f"replay {label}",
                unit="ex",
                position=position,
                leave=True,
                # None: on when stderr is a terminal; False: off
                disable=None if enabled is None else not enabled,
                dynamic_ncols=True,
            )
            for position, label in enumerate(labels)
        }

    def __enter__(self) -> Progress:
        return self

    def __exit__(self, *exc_info: object) -> None:
        for bar in self._bars.values():
            bar.close()

    def advance(self, pairs: Iterable[Pair]) -> None:
        counts: dict[str, int] = {}
        for label, _example_id in pairs:
            counts[label] = counts.get(label, 0) + 1
        for label, count in counts.items():
            self._bars[label].update(count)
