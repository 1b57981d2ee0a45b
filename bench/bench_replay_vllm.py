"""Golden-set replay on vLLM vs vLLM's own offline ``generate``, side by side in one run, on one engine.

\b
    .venv/bin/python bench/bench_replay_vllm.py                      # 1,000 examples x (base + a1 + a2)
    .venv/bin/python bench/bench_replay_vllm.py --examples 200 --pairs 1

One vLLM engine (the tiny Llama, adapters a1 and a2, built locally) answers the same rendered prompts with the same
``SamplingParams`` for the base model and both adapters, in the same chunks of ``--chunk-size`` examples (one
``LoRARequest`` per row), in two arms:

- **bare**: ``LLM.generate`` with loratrace's instrumentation switched off (``suppress_instrumentation()``);
- **replay**: ``run_replay`` on the same engine: loratrace's instrumentation, a request scope per request, every
  built-in evaluator, the spans written into a fresh local store, the resume journal.

Like with like: vLLM caches prompt prefixes (on by default), so a prompt's first pass through the engine costs more
than its later ones. Before any timed run, one full untimed bare pass puts every prompt (per model) in the engine's
cache, which both arms share, and one chunk of replay warms the replay's own first-use costs; so every timed run of
either arm finds the same cache state. Each run starts from a collected heap (``gc.collect()``), and the load
average is read before and after it.

Each pair (round) is, by default, one replay with the bare engine interleaved chunk by chunk (``InterleavedBare``):
next to every replay chunk, the bare engine answers the same requests, before it on even chunks and after it on
odd ones, so both arms see the same load however it swings; the replay's time is the run's minus the bare calls'.
On a shared machine whose load swings within seconds, whole runs one after the other (``--whole-runs``, order
flipped every other pair) measure the load as much as the code: at load 5-22 their pairs read 43 % to 869 %.

Throughput is answers per second (engine start-up excluded from both); the figure is replay / bare per pair, and
the median over pairs. Goal: >= 90 %. The engine runs in this process (``VLLM_ENABLE_V1_MULTIPROCESSING=0``), so
the process's CPU time covers all the work of both, and replay / bare in CPU time is printed too. The evaluators'
own time per answer is measured inside the replay and reported apart.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import statistics
import tempfile
import time
from pathlib import Path

from _common import ENGINE_ENV, fixture_models

# the engine in this process (the replay's own path), quiet
REPLAY_ENGINE_ENV = {**ENGINE_ENV, "VLLM_ENABLE_V1_MULTIPROCESSING": "0", "VLLM_LOGGING_LEVEL": "ERROR"}
SUBJECTS = ["invoice", "password", "refund", "account", "seats", "plan", "billing date", "customer email"]
CONTEXT = "Invoices are due within thirty days of the billing date. Enterprise customers get a refund policy summary."


def golden_rows(count: int) -> list[dict]:
    rows = []
    for n in range(count):
        subject = SUBJECTS[n % len(SUBJECTS)]
        row = {"id": f"g{n:05d}", "cohort": ("smb", "enterprise", "consumer")[n % 3],
               "prompt": f"Question {n}: when is the {subject} due?", "expected": "thirty days", "match": "contains",
               "limits": {"max_words": 60}}  # fmt: skip
        if n % 2 == 0:
            row["context"] = CONTEXT
        rows.append(row)
    return rows


def bare_run(engine, requests, chunk_rows, settings) -> None:
    """vLLM's own generate over the same requests, chunk by chunk."""
    params = engine.sampling_params(settings, 0)
    for start in range(0, len(requests), chunk_rows):
        chunk = requests[start : start + chunk_rows]
        engine.llm.generate(
            [prompt for _, prompt in chunk], params, lora_request=[engine.lora(a) for a, _ in chunk], use_tqdm=False
        )


class InterleavedBare:
    """Makes the bare engine answer each replay chunk's own requests right next to it, in the same process.

    Installed over ``engine.generate`` for one ``run_replay``: chunk by chunk, the same requests go through
    ``LLM.generate`` with loratrace's instrumentation switched off, before the replay's call on even chunks and
    after it on odd ones (after draining loratrace's background thread, so none of the replay's span work lands
    in the bare call). Both arms thus see the same load, however it swings between chunks; the replay's time is
    the run's time minus the bare calls'.
    """

    def __init__(self, engine, settings) -> None:
        from loratrace.runtime.finisher import finisher

        self._engine, self._finisher = engine, finisher
        self._params = engine.sampling_params(settings, 0)
        self._replay_generate = engine.generate
        self.wall = self.cpu = 0.0
        self.chunks = 0

    def __enter__(self) -> InterleavedBare:
        self._engine.generate = self.generate
        return self

    def __exit__(self, *exc_info: object) -> None:
        del self._engine.generate

    def _bare(self, requests) -> None:
        from opentelemetry.instrumentation.utils import suppress_instrumentation

        engine = self._engine
        started, cpu_started = time.perf_counter(), time.process_time()
        with suppress_instrumentation():  # loratrace's wrappers, like OpenTelemetry's, then call straight through
            engine.llm.generate(
                [request.prompt for request in requests], self._params,
                lora_request=[engine.lora(request.adapter) for request in requests], use_tqdm=False,
            )  # fmt: skip
        self.wall += time.perf_counter() - started
        self.cpu += time.process_time() - cpu_started

    def generate(self, requests, scopes, indices, settings):
        bare_first = self.chunks % 2 == 0
        self.chunks += 1
        if bare_first:
            self._bare(requests)
        texts = self._replay_generate(requests, scopes, indices, settings)
        if not bare_first:
            self._finisher.drain()
            self._bare(requests)
        return texts


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--examples", type=int, default=1000)
    parser.add_argument("--pairs", type=int, default=2, help="rounds: bare/replay pairs")
    parser.add_argument(
        "--whole-runs",
        action="store_true",
        help="one whole bare run and one whole replay per pair (order flipped every other pair) instead of the "
        "bare engine interleaved chunk by chunk with the replay",
    )
    parser.add_argument("--chunk-size", type=int, default=256, help="examples per chunk (x3 rows per vLLM batch)")
    parser.add_argument("--max-new-tokens", type=int, default=16)
    args = parser.parse_args()
    for key, value in REPLAY_ENGINE_ENV.items():
        os.environ.setdefault(key, value)

    from loratrace.replay import read_dataset, run_replay
    from loratrace.replay.dataset import render_prompt
    from loratrace.replay.engines import GenerationSettings, VLLMEngine

    work = Path(tempfile.mkdtemp(prefix="bench-replay-"))
    models = fixture_models()
    adapters = {name: str(path) for name, path in models.adapters.items()}
    golden = work / "golden.jsonl"
    golden.write_text("".join(json.dumps(row) + "\n" for row in golden_rows(args.examples)), encoding="utf-8")
    settings = GenerationSettings(max_new_tokens=args.max_new_tokens)
    engine = VLLMEngine(str(models.base), adapters)
    labels = [None, *sorted(adapters)]
    # the same order the replay sends: per example, the base model then each adapter
    requests = [
        (adapter, render_prompt(example, engine.tokenizer))
        for example in read_dataset(golden).examples
        for adapter in labels
    ]
    answers = len(requests)
    chunk_rows = args.chunk_size * len(labels)

    def replay(store: Path, limit: int | None = None):
        summary = run_replay(
            golden, base=str(models.base), adapters=adapters, engine=engine, store=store, limit=limit,
            generation=settings, chunk_size=args.chunk_size, progress=False,
        )  # fmt: skip
        assert summary.answers == (answers if limit is None else limit * len(labels)), summary
        return summary

    # warm-up, untimed: every prompt (per model) through the engine once, which both arms share (the prefix cache),
    # then one chunk of replay (first-batch costs, lazy imports)
    bare_run(engine, requests, chunk_rows, settings)
    replay(work / "store-warm-up", limit=args.chunk_size)

    ratios, cpu_ratios, bare_rates, replay_rates, evaluator_ms, loads = [], [], [], [], [], []
    for pair in range(args.pairs if not args.whole_runs else 0):
        gc.collect()
        loads.append(os.getloadavg()[0])
        started, cpu_started = time.perf_counter(), time.process_time()
        with InterleavedBare(engine, settings) as bare:
            summary = replay(work / f"store-{pair}")
        wall_all, cpu_all = time.perf_counter() - started, time.process_time() - cpu_started
        loads.append(os.getloadavg()[0])
        evaluator_ms.append(summary.evaluator_seconds / answers * 1000)
        bare_rates.append(answers / bare.wall)
        replay_rates.append(answers / (wall_all - bare.wall))
        ratios.append(bare.wall / (wall_all - bare.wall))
        cpu_ratios.append(bare.cpu / (cpu_all - bare.cpu))
        print(
            f"round {pair + 1} ({bare.chunks} chunks, bare next to each): bare {bare_rates[-1]:.1f} answers/s, "
            f"replay {replay_rates[-1]:.1f} answers/s, replay/bare {ratios[-1]:.1%} (CPU time {cpu_ratios[-1]:.1%}), "
            f"evaluators {evaluator_ms[-1]:.3f} ms/answer, load average {loads[-2]:.1f}-{loads[-1]:.1f}",
            flush=True,
        )
    for pair in range(args.pairs if args.whole_runs else 0):
        order = ("bare", "replay") if pair % 2 == 0 else ("replay", "bare")
        wall: dict[str, float] = {}
        cpu: dict[str, float] = {}
        for kind in order:
            gc.collect()
            loads.append(os.getloadavg()[0])
            started, cpu_started = time.perf_counter(), time.process_time()
            if kind == "bare":
                bare_run(engine, requests, chunk_rows, settings)
            else:
                summary = replay(work / f"store-{pair}")
                evaluator_ms.append(summary.evaluator_seconds / answers * 1000)
            wall[kind], cpu[kind] = time.perf_counter() - started, time.process_time() - cpu_started
            loads.append(os.getloadavg()[0])
        bare_rates.append(answers / wall["bare"])
        replay_rates.append(answers / wall["replay"])
        ratios.append(wall["bare"] / wall["replay"])
        cpu_ratios.append(cpu["bare"] / cpu["replay"])
        print(
            f"pair {pair + 1} ({' then '.join(order)}): bare {bare_rates[-1]:.1f} answers/s, "
            f"replay {replay_rates[-1]:.1f} answers/s, replay/bare {ratios[-1]:.1%} (CPU time {cpu_ratios[-1]:.1%}), "
            f"evaluators {evaluator_ms[-1]:.3f} ms/answer, load average {loads[-4]:.1f}-{loads[-1]:.1f}",
            flush=True,
        )
    print(
        f"\n{args.examples} examples x {len(labels)} models = {answers} answers, {args.max_new_tokens} new tokens, "
        f"chunks of {args.chunk_size} examples\n"
        f"bare vLLM generate: {statistics.median(bare_rates):.1f} answers/s (median of {args.pairs})\n"
        f"loratrace replay:   {statistics.median(replay_rates):.1f} answers/s\n"
        f"replay / bare:      {statistics.median(ratios):.1%} wall clock, {statistics.median(cpu_ratios):.1%} "
        "in process CPU time (goal >= 90 %)\n"
        f"evaluators:         {statistics.median(evaluator_ms):.3f} ms per answer (inside the replay's time)\n"
        f"load average (1 min) over the timed runs: {min(loads):.1f}-{max(loads):.1f}, median "
        f"{statistics.median(loads):.1f}; {os.cpu_count()} CPUs"
    )


if __name__ == "__main__":
    main()
