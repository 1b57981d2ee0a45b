"""Golden-set replay on the transformers engine: padded batches (``--batch-size``) vs one prompt per ``generate``.

\b
    .venv/bin/python bench/bench_replay_transformers_batching.py                  # 120 examples x 3 models, 3 rounds
    .venv/bin/python bench/bench_replay_transformers_batching.py --examples 48 --rounds 2 --batch-sizes 1 4 8 16

One transformers engine (the tiny Llama with adapters a1 and a2, built locally, torch on one thread) is opened once
and shared by every run; each run is a whole ``run_replay`` (instrumentation, request scopes, every built-in
evaluator, spans into a fresh local store, the journal) over the same golden set with the same greedy settings,
only the engine's batch size differing. Runs alternate in every round, the order reversed every other round, so
drift in the machine's load reaches each batch size alike; one untimed run of each batch size first warms the
engine. The figure is examples per second (an example is answered by all three models) and answers per second,
the median over rounds, with the load average read around each run.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "bench"))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

from bench_replay_vllm import golden_rows  # noqa: E402 (the same golden set as the vLLM replay benchmark)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--examples", type=int, default=120)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[1, 8])
    parser.add_argument("--max-new-tokens", type=int, default=16)
    parser.add_argument("--chunk-size", type=int, default=64, help="examples per chunk (the replay's default)")
    args = parser.parse_args()

    from loratrace.demo.tiny_model import ensure_tiny_models
    from loratrace.replay import GenerationSettings, run_replay
    from loratrace.replay.engines import TransformersEngine

    work = Path(tempfile.mkdtemp(prefix="bench-replay-hf-"))
    models = ensure_tiny_models(Path(os.environ.get("LORATRACE_FIXTURES", REPO / ".fixtures")))
    adapters = {name: str(path) for name, path in models.adapters.items()}
    golden = work / "golden.jsonl"
    golden.write_text("".join(json.dumps(row) + "\n" for row in golden_rows(args.examples)), encoding="utf-8")
    engine = TransformersEngine(str(models.base), adapters, threads=1)
    answers = args.examples * (1 + len(adapters))
    runs = 0

    def replay(batch_size: int) -> float:
        nonlocal runs
        runs += 1
        engine.batch_size = batch_size
        gc.collect()
        started = time.perf_counter()
        summary = run_replay(
            golden, base=str(models.base), adapters=adapters, engine=engine, store=work / f"store-{runs}",
            generation=GenerationSettings(max_new_tokens=args.max_new_tokens), chunk_size=args.chunk_size,
            progress=False,
        )  # fmt: skip
        seconds = time.perf_counter() - started
        assert summary.answers == answers, summary
        return seconds

    for batch_size in args.batch_sizes:  # warm-up, untimed
        replay(batch_size)
    seconds: dict[int, list[float]] = {size: [] for size in args.batch_sizes}
    loads: list[float] = []
    for round_number in range(args.rounds):
        order = args.batch_sizes if round_number % 2 == 0 else list(reversed(args.batch_sizes))
        for batch_size in order:
            loads.append(os.getloadavg()[0])
            seconds[batch_size].append(replay(batch_size))
            loads.append(os.getloadavg()[0])
        print(
            f"round {round_number + 1}: "
            + ", ".join(f"batch {size}: {args.examples / seconds[size][-1]:.2f} examples/s" for size in order)
            + f" (load average {loads[-2 * len(order)]:.1f}-{loads[-1]:.1f})",
            flush=True,
        )
    print(
        f"\n{args.examples} examples x {1 + len(adapters)} models = {answers} answers of {args.max_new_tokens} "
        f"new tokens, greedy, torch on 1 thread, chunks of {args.chunk_size} examples"
    )
    unbatched = statistics.median(seconds[args.batch_sizes[0]])
    for size in args.batch_sizes:
        median = statistics.median(seconds[size])
        print(
            f"--batch-size {size:>3}: {args.examples / median:7.2f} examples/s, {answers / median:7.1f} answers/s "
            f"(median of {args.rounds}; x{unbatched / median:.2f} vs --batch-size {args.batch_sizes[0]})"
        )
    print(f"load average (1 min) around the runs: {min(loads):.1f}-{max(loads):.1f}; {os.cpu_count()} CPUs")


if __name__ == "__main__":
    main()
