"""Turning command-line values into ``run_replay`` arguments, and a replay's summary into text."""

from __future__ import annotations

from collections.abc import Sequence

from loratrace.errors import ConfigurationError
from loratrace.replay.runner import ReplaySummary


def parse_adapters(values: Sequence[str]) -> dict[str, str]:
    """``NAME=PATH`` values -> {name: path}; ``ConfigurationError`` naming the bad value."""
    adapters: dict[str, str] = {}
    for value in values:
        name, sep, path = value.partition("=")
        if not sep or not name.strip() or not path.strip():
            msg = f"--adapter takes NAME=PATH (e.g. a1=./adapters/a1), got {value!r}"
            raise ConfigurationError(msg)
        if name in adapters:
            msg = f"--adapter {name!r} is given twice"
            raise ConfigurationError(msg)
        adapters[name.strip()] = path.strip()
    return adapters


def format_summary(summary: ReplaySummary) -> str:
    models = ", ".join(f"{label} {count}" for label, count in summary.generated.items())
    per_example = summary.evaluator_seconds / summary.answers * 1000 if summary.answers else 0.0
    lines = [
        f"replay {summary.run_id}: dataset {summary.dataset_version}, {summary.examples} examples",
        f"answers generated: {summary.answers} ({models}); already done before this run: {summary.already_done}",
        f"schema retries: {summary.schema_retries}; fallbacks to the base model: {summary.fallbacks}",
        f"generation {summary.generation_seconds:.2f} s; evaluators {summary.evaluator_seconds:.3f} s "
        f"({per_example:.3f} ms per answer); total {summary.elapsed_seconds:.2f} s",
        f"skipped lines: {len(summary.problems)}; journal: {summary.journal}",
    ]
    return "\n".join(lines) + "\n"
