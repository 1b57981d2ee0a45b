"""A batched generate as one generation per prompt row.

OpenTelemetry's GenAI conventions describe one span per generation, and a paired comparison needs one per
golden-set example, so a ``generate`` call over a batch of prompts (``input_ids`` with more than one row) makes one
generation span per row: that row's own input tokens (padding excluded) and output tokens, its finish reason(s),
the model and adapter that served the whole call, and the release context of the row.

Which context: inside ``RequestScopes.serving(indices)`` (``loratrace.request_scopes``), row ``k`` is served in
the ``k``-th scope named there, and its generation stays open in that scope for ``record_eval`` & co. (the same
rule as a vLLM batch; a single-row call inside ``serving()`` is served in its first scope too). Outside it, every
row inherits the current ``loratrace.context`` and ends with the call: no one row is "the" generation that later
helpers would annotate, so the scope's previous generation is ended too, rather than left to take their
annotations.

While the call runs, the first row's generation is the current span (so the nested ``generate`` a ``PeftModel``
makes is not traced twice, and spans started inside the call have a parent). The outcome of the whole batch is
read once, on the finisher thread, and split into rows there.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from opentelemetry import context as otel_context

from loratrace import semconv
from loratrace.runtime.generation import Generation
from loratrace.runtime.recorder import GenerationProfile, GenerationRecorder
from loratrace.runtime.release_scope import CURRENT_SCOPE, Scope
from loratrace.runtime.request_scopes import SERVING_SCOPES


def batch_rows(input_ids: Any) -> int:
    """Prompt rows of a ``generate`` call's ``input_ids`` (0 when it has none, e.g. ``inputs_embeds``)."""
    shape = getattr(input_ids, "shape", None)
    return int(shape[0]) if shape is not None and len(shape) == 2 else 0


class RowGenerations:
    """The generations of one batched call, one per prompt row, each started in its row's scope."""

    __slots__ = ("generations", "registered")

    def __init__(
        self,
        recorder: GenerationRecorder,
        profile: GenerationProfile,
        parent: otel_context.Context,
        rows: int,
        serving: Sequence[Scope] | None,
    ) -> None:
        self.generations: list[Generation] = []
        self.registered: list[bool] = []
        for row in range(rows):
            scope = serving[row] if serving is not None and row < len(serving) else None
            if scope is None:
                self.generations.append(Generation(recorder, profile, parent))
            else:  # a generation takes its context from the scope current when it starts: the row's own
                token = CURRENT_SCOPE.set(scope)
                try:
                    self.generations.append(Generation(recorder, profile, parent))
                finally:
                    CURRENT_SCOPE.reset(token)
            self.registered.append(scope is not None)
        shared = CURRENT_SCOPE.get()
        if shared is not None and not all(self.registered):
            shared.close()  # ends the scope's previous generation (the scope itself stays usable)


def row_generations(
    recorder: GenerationRecorder, profile: GenerationProfile, parent: otel_context.Context, input_ids: Any
) -> RowGenerations | None:
    """The per-row generations of a batched call, or None for a single-row call outside ``serving()`` (which
    keeps the one-generation path)."""
    serving = SERVING_SCOPES.get()
    rows = batch_rows(input_ids)
    if serving is None and rows <= 1:
        return None
    return RowGenerations(recorder, profile, parent, max(rows, 1), serving)


class BatchReading:
    """Reads a batch's outcome once, when the first row's span is built, and hands each row its own part."""

    __slots__ = ("_read", "_rows")

    def __init__(self, read: Callable[[], list[dict[str, Any]]]) -> None:
        self._read = read
        self._rows: list[dict[str, Any]] | None = None

    def row(self, index: int) -> dict[str, Any]:
        if self._rows is None:  # only the finisher thread reads, in order: no lock needed
            self._rows = self._read()
        return self._rows[index] if index < len(self._rows) else {}


def split_rows(
    rows: int,
    input_tokens: list[int] | None,
    output_counts: list[int],
    reasons: list[str],
    extra: dict[str, Any],
) -> list[dict[str, Any]]:
    """Per-row outcomes: the returned sequences are ``num_return_sequences`` per prompt, in prompt order."""
    per_row, remainder = divmod(len(output_counts), rows)
    if per_row == 0 or remainder:  # not a shape generate returns: no token counts rather than wrong ones
        return [{"extra": {**extra, semconv.BATCH_SIZE: rows}} for _ in range(rows)]
    outcomes = []
    for row in range(rows):
        chosen = slice(row * per_row, (row + 1) * per_row)
        outcome: dict[str, Any] = {
            "output_tokens": sum(output_counts[chosen]),
            "finish_reasons": reasons[chosen],
            "extra": {**extra, semconv.BATCH_SIZE: rows},
        }
        if input_tokens is not None and row < len(input_tokens):
            outcome["input_tokens"] = input_tokens[row]
        outcomes.append(outcome)
    return outcomes
