"""``run_replay``: a golden set through the base model and each adapter, evaluated, into the store.

Work goes in chunks of examples. For each chunk, every (model, example) pair not yet finished is one request, in a
request scope of its own carrying the example's id and cohort (``loratrace.request_scopes``); the engine answers
them all (vLLM in one batch, transformers in padded batches of ``batch_size`` per model), each in its own
generation span. Answers to examples with a schema go through the bounded retry loop serving code
uses: ``record_schema_attempt`` for each attempt, a new attempt with the validation error appended, and, when
asked, ``mark_fallback`` and the base model's answer once the attempts are spent. Then every answer is evaluated
and the results recorded as ``gen_ai.evaluation.result`` events on its generation span. The chunk's spans are
exported together, and only then are its pairs journaled (see ``loratrace.replay.telemetry``).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import loratrace
from loratrace import semconv
from loratrace.errors import ConfigurationError, LoratraceError
from loratrace.evaluators.json_schema import check_json
from loratrace.replay.dataset import Dataset, Example, Problem, read_dataset, render_prompt
from loratrace.replay.engines import (
    DEFAULT_BATCH_SIZE,
    Engine,
    EngineName,
    GenerationChanges,
    GenerationSettings,
    Request,
    open_engine,
)
from loratrace.replay.evaluation import evaluate_answer
from loratrace.replay.journal import Journal, Pair
from loratrace.replay.progress import Progress
from loratrace.replay.telemetry import replay_telemetry
from loratrace.runtime.finisher import finisher

if TYPE_CHECKING:
    from typing_extensions import Unpack

logger = logging.getLogger(__name__)

BASE_LABEL = "base"
"""The journal's and the progress bars' name for the base model."""
RUN_KEY = "replay_run"
MODEL_KEY = "replay_model"
_FEEDBACK_CHARS = 200


class ReplayError(LoratraceError):
    """The replay could not keep its spans (the store or the collector refused them); resume once it is back."""


@dataclass
class ReplaySummary:
    """What a replay did; ``generated`` counts answers per model label (``base`` or the adapter's name)."""

    run_id: str
    dataset_version: str
    examples: int
    problems: list[Problem]
    already_done: int = 0
    generated: dict[str, int] = field(default_factory=dict)
    schema_retries: int = 0
    fallbacks: int = 0
    generation_seconds: float = 0.0
    evaluator_seconds: float = 0.0
    elapsed_seconds: float = 0.0
    journal: str = ""

    @property
    def answers(self) -> int:
        return sum(self.generated.values())


def run_id_for(dataset_version: str, base: str, adapters: Mapping[str, str], **settings: Any) -> str:
    """A stable id of one replay's configuration: the same arguments resume the same run."""
    described = json.dumps(
        {"dataset": dataset_version, "base": os.fspath(base), "adapters": sorted(adapters.items()), **settings},
        sort_keys=True,
        default=str,
    )
    return hashlib.sha256(described.encode()).hexdigest()[:16]


def _finished_in_store(store: str | os.PathLike[str], run_id: str) -> set[Pair]:
    """Pairs of this run whose spans are already in the store: a kill between a chunk's export and its journal
    entry must not replay it twice."""
    from loratrace.store import layout, query

    if not (Path(store) / layout.CATALOG).exists():
        return set()  # not a store yet: the first run creates it
    operations = list(semconv.GENERATION_OPERATIONS)
    placeholders = ", ".join("?" for _ in operations)
    found = query(
        store,
        f"SELECT DISTINCT attributes[?] AS model, example_id FROM spans "
        f"WHERE attributes[?] = ? AND operation_name IN ({placeholders})",
        [semconv.CONTEXT_PREFIX + MODEL_KEY, semconv.CONTEXT_PREFIX + RUN_KEY, run_id, *operations],
    )
    if found.is_empty():
        return set()
    return {(str(model), str(example)) for model, example in found.iter_rows() if model and example}


def _check_adapters(adapters: Mapping[str, str]) -> None:
    for name, path in adapters.items():
        if name == BASE_LABEL or not name:
            msg = f"--adapter name {name!r} is reserved or empty; name adapters as vLLM/PEFT serve them (a1=PATH)"
            raise ConfigurationError(msg)
        if not Path(path).is_dir():
            msg = f"--adapter {name}={path}: no such adapter folder"
            raise ConfigurationError(msg)


def _check_at_least(flag: str, value: float, minimum: int) -> None:
    if value < minimum:
        bound = "at least 1" if minimum == 1 else f"{minimum} or more"
        msg = f"{flag} must be {bound}, got {value}"
        raise ConfigurationError(msg)


def run_replay(
    dataset: str | os.PathLike[str],
    *,
    base: str,
    adapters: Mapping[str, str],
    generation: GenerationSettings | None = None,
    engine: EngineName | Engine = "transformers",
    store: str | os.PathLike[str] | None = None,
    endpoint: str | None = None,
    limit: int | None = None,
    schema_attempts: int = 2,
    fallback_to_base: bool = False,
    evaluators: Sequence[Any] = (),
    evaluator_timeout_s: float = 30.0,
    dataset_version: str | None = None,
    chunk_size: int = 64,
    batch_size: int = DEFAULT_BATCH_SIZE,
    threads: int | None = None,
    journal: str | os.PathLike[str] | None = None,
    run_id: str | None = None,
    progress: bool | None = None,
    on_problem: Callable[[Problem], None] | None = None,
    **generation_changes: Unpack[GenerationChanges],
) -> ReplaySummary:
    """Replay a JSONL golden set through ``base`` and every adapter; spans into ``store`` or to ``endpoint``.

    Every model answers with ``generation`` (default :class:`~loratrace.replay.engines.GenerationSettings`), with
    ``generation_changes`` applied: its fields ``max_new_tokens``, ``temperature``, ``seed`` and
    ``max_model_len`` by name, as ``loratrace replay``'s flags give them (``max_new_tokens=8`` is
    ``generation=GenerationSettings(max_new_tokens=8)``).

    ``engine`` is ``"transformers"`` or ``"vllm"`` (opened here with ``base`` and ``adapters``, closed at the end),
    or an engine already open with them (:class:`~loratrace.replay.engines.VLLMEngine`, kept open: several
    replays, or a replay and a benchmark, share one engine start-up). Resumes a previous run with the same
    configuration (the same ``run_id``): pairs in its journal, or already in the store, are not generated again.
    Malformed lines are passed to ``on_problem`` (with their line number)
    and skipped. ``threads`` sets torch's intra-op threads for the transformers engine (default: torch's own),
    ``batch_size`` its prompts per padded ``generate`` (vLLM schedules its own batches; an engine passed open keeps
    its own ``batch_size``). The batch size is not
    part of the run's configuration: greedy answers are the same whatever it is, so a resumed run may change it.
    Returns a :class:`ReplaySummary`.
    """
    _check_at_least("--schema-attempts", schema_attempts, 1)
    _check_at_least("--chunk-size", chunk_size, 1)
    _check_at_least("--batch-size", batch_size, 1)
    settings = replace(generation or GenerationSettings(), **generation_changes)
    _check_adapters(adapters)
    library = engine if isinstance(engine, str) else engine.library
    started = time.perf_counter()
    data: Dataset = read_dataset(dataset, limit=limit, version=dataset_version)
    for problem in data.problems:
        (on_problem or (lambda p: logger.warning("%s: %s", dataset, p)))(problem)
    run = run_id or run_id_for(
        data.version,
        base,
        adapters,
        engine=library,
        max_new_tokens=settings.max_new_tokens,
        temperature=settings.temperature,
        seed=settings.seed,
        schema_attempts=schema_attempts,
        fallback=fallback_to_base,
    )
    journal_path = Path(journal) if journal is not None else Path(store or ".") / "replay-journal" / f"{run}.jsonl"
    book = Journal(journal_path)
    done = book.finished()
    if store is not None:
        done |= _finished_in_store(store, run)
    labels = [BASE_LABEL, *sorted(adapters)]
    summary = ReplaySummary(run, data.version, len(data.examples), list(data.problems), journal=str(journal_path))
    summary.generated = dict.fromkeys(labels, 0)
    todo = [(label, example) for example in data.examples for label in labels if (label, example.id) not in done]
    summary.already_done = len(data.examples) * len(labels) - len(todo)
    if not todo:
        summary.elapsed_seconds = time.perf_counter() - started
        return summary
    with replay_telemetry(store=store, endpoint=endpoint, libraries=[library]) as processor:
        model = (
            open_engine(
                engine, base, adapters, max_model_len=settings.max_model_len, threads=threads, batch_size=batch_size
            )
            if isinstance(engine, str)
            else engine
        )
        try:
            bars = Progress(labels, total=len(data.examples), done=done, examples=data.examples, enabled=progress)
            with bars, loratrace.context(dataset_version=data.version):
                chunk = _Chunk(
                    model,
                    settings,
                    summary,
                    schema_attempts,
                    fallback_to_base,
                    evaluators,
                    evaluator_timeout_s,
                    run,
                    on_problem,
                )
                for start in range(0, len(todo), chunk_size * len(labels)):
                    pairs = chunk.run(todo[start : start + chunk_size * len(labels)])
                    finisher.drain()
                    if not processor.commit():
                        msg = (
                            f"the replay's spans could not be written to {store or endpoint}; nothing of the last "
                            "chunk was journaled, so running the same command again resumes from it"
                        )
                        raise ReplayError(msg)
                    book.append(pairs)
                    bars.advance(pairs)
        finally:
            if isinstance(engine, str):
                model.close()
    summary.elapsed_seconds = time.perf_counter() - started
    return summary


@dataclass
class _Chunk:
    """Runs one chunk of (model label, example) pairs; see the module's note."""

    engine: Any
    settings: GenerationSettings
    summary: ReplaySummary
    schema_attempts: int
    fallback_to_base: bool
    evaluators: Sequence[Any]
    evaluator_timeout_s: float
    run_id: str
    on_problem: Callable[[Problem], None] | None
    _prompts: dict[str, str] = field(default_factory=dict, init=False)
    # example id -> its prompt fits --max-model-len (tokenised once)
    _fitting: dict[str, bool] = field(default_factory=dict, init=False)

    def _prompt(self, example: Example) -> str:
        prompt = self._prompts.get(example.id)
        if prompt is None:
            prompt = self._prompts[example.id] = render_prompt(example, self.engine.tokenizer)
        return prompt

    def _fits(self, prompt: str) -> bool:
        return self.engine.prompt_tokens(prompt) + self.settings.max_new_tokens <= self.settings.max_model_len

    def _request(self, label: str, example: Example, prompt: str) -> Request:
        seed = int.from_bytes(hashlib.sha256(f"{self.settings.seed}:{example.id}".encode()).digest()[:4], "big")
        return Request(adapter=None if label == BASE_LABEL else label, prompt=prompt, seed=seed)

    def run(self, pairs: Sequence[tuple[str, Example]]) -> list[Pair]:
        runnable = []
        for label, example in pairs:
            fits = self._fitting.get(example.id)
            if fits is None:
                fits = self._fitting[example.id] = self._fits(self._prompt(example))
            if fits:
                runnable.append((label, example))
            elif label == BASE_LABEL:  # reported once per example, not once per model
                problem = Problem(example.line, f"prompt of {example.id!r} is longer than --max-model-len allows")
                self.summary.problems.append(problem)
                if self.on_problem is not None:
                    self.on_problem(problem)
        contexts = [
            {
                "cohort": example.cohort,
                "example_id": example.id,
                "variant": semconv.VARIANT_BASE if label == BASE_LABEL else semconv.VARIANT_ADAPTER,
                RUN_KEY: self.run_id,
                MODEL_KEY: label,
            }
            for label, example in runnable
        ]
        with loratrace.request_scopes(contexts) as scopes:
            requests = [self._request(label, example, self._prompt(example)) for label, example in runnable]
            indices = list(range(len(requests)))
            texts = self._generate(requests, scopes, indices)
            self._schema_loop(runnable, requests, texts, scopes)
            for index, (_label, example) in enumerate(runnable):
                results, seconds = evaluate_answer(
                    example, texts[index], external=self.evaluators, timeout_s=self.evaluator_timeout_s
                )
                self.summary.evaluator_seconds += seconds
                with scopes.request(index):
                    for result in results:
                        loratrace.record_eval(
                            result.name,
                            score=result.score,
                            label=result.label,
                            passed=result.passed,
                            explanation=result.explanation,
                        )
        for label, _example in runnable:
            self.summary.generated[label] += 1
        return [(label, example.id) for label, example in pairs]

    def _generate(self, requests: Sequence[Request], scopes: Any, indices: Sequence[int]) -> list[str]:
        started = time.perf_counter()
        texts = self.engine.generate(requests, scopes, indices, self.settings)
        self.summary.generation_seconds += time.perf_counter() - started
        return texts

    def _schema_loop(
        self, runnable: Sequence[tuple[str, Example]], requests: list[Request], texts: list[str], scopes: Any
    ) -> None:
        checked = [index for index, (_label, example) in enumerate(runnable) if example.schema is not None]
        for attempt in range(1, self.schema_attempts + 1):
            failed = []
            for index in checked:
                error = check_json(texts[index], runnable[index][1].schema)
                with scopes.request(index):
                    loratrace.record_schema_attempt(valid=error is None, error=error)
                if error is not None:
                    failed.append((index, error))
            if not failed:
                return
            if attempt == self.schema_attempts:
                break
            retry = [(i, self._retry_prompt(requests[i].prompt, texts[i], e)) for i, e in failed]
            retry = [(i, prompt) for i, prompt in retry if self._fits(prompt)]
            self.summary.schema_retries += len(retry)
            retried = [Request(requests[i].adapter, prompt, requests[i].seed) for i, prompt in retry]
            for (index, _prompt), text in zip(
                retry, self._generate(retried, scopes, [i for i, _ in retry]), strict=True
            ):
                texts[index] = text
            checked = [index for index, _prompt in retry]
        if not self.fallback_to_base:
            return
        fallen = [index for index, _error in failed if requests[index].adapter is not None]
        for index in fallen:
            with scopes.request(index):
                loratrace.mark_fallback(reason="schema_invalid")
        self.summary.fallbacks += len(fallen)
        base_requests = [Request(None, self._prompt(runnable[i][1]), requests[i].seed) for i in fallen]
        for index, text in zip(fallen, self._generate(base_requests, scopes, fallen), strict=True):
            texts[index] = text
            error = check_json(text, runnable[index][1].schema)
            with scopes.request(index):
                loratrace.record_schema_attempt(valid=error is None, error=error)

    @staticmethod
    def _retry_prompt(prompt: str, answer: str, error: str) -> str:
        return (
            f"{prompt}{answer}\n\nThat answer is not valid JSON for the required schema "
            f"({error[:_FEEDBACK_CHARS]}). Reply again with the JSON only.\n"
        )
