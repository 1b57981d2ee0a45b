"""Golden-set replay on vLLM vs vLLM's own offline ``generate``, side by side in one run, on one engine.

\b
    .venv/bin/python bench/bench_replay_vllm.py                      # 1,000 examples x (base + a1 + a2)
    .venv/bin/python bench/bench_replay_vllm.py --examples 200 --pairs 1

One vLLM engine (the tiny Llama, adapters a1 and a2, built locally). Each pair of runs, order flipped every other
pair, answers the same rendered prompts with the same ``SamplingParams`` for the base model and both adapters:

- **bare**: ``LLM.generate`` over all of them in chunks of ``--chunk-size`` examples (one ``LoRARequest`` per
  row), loratrace not instrumented;
- **replay**: ``run_replay`` on the same engine and chunks: loratrace's instrumentation, a request scope per
  request, every built-in evaluator, the spans written into a fresh local store, the resume journal.

Like with like: vLLM caches prompt prefixes (on by default), so a prompt's first pass through the engine costs more
than its later ones. Before any timed run, one full untimed pass of each arm puts every prompt (per model) in the
cache, so every timed run of either arm finds the same cache state; both arms also start from a collected heap
(``gc.collect()``), and the load average is read before and after each run.

Throughput is answers per second from the first chunk to the last commit (engine start-up excluded from both);
the figure is replay / bare per pair, and the median over pairs. Goal: >= 90 %. The engine runs in this process
(``VLLM_ENABLE_V1_MULTIPROCESSING=0``), so the process's CPU time covers all the work of both; on a shared machine
whose load swings between runs, replay / bare in CPU time is the steadier figure, and both are printed. The
evaluators' own time per answer is measured inside the replay and reported apart.
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
ENGINE_ENV = {
    "VLLM_ENABLE_V1_MULTIPROCESSING": "0",
    "VLLM_CPU_KVCACHE_SPACE": "1",
    "HF_HUB_OFFLINE": "1",
    "VLLM_NO_USAGE_STATS": "1",
    "TOKENIZERS_PARALLELISM": "false",
    "VLLM_LOGGING_LEVEL": "ERROR",
}
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--examples", type=int, default=1000)
    parser.add_argument("--pairs", type=int, default=2, help="bare/replay pairs (order flipped every other pair)")
    parser.add_argument("--chunk-size", type=int, default=256, help="examples per chunk (x3 rows per vLLM batch)")
    parser.add_argument("--max-new-tokens", type=int, default=16)
    args = parser.parse_args()
    for key, value in ENGINE_ENV.items():
        os.environ.setdefault(key, value)

    from loratrace.demo.tiny_model import ensure_tiny_models
    from loratrace.replay import read_dataset, run_replay
    from loratrace.replay.dataset import render_prompt
    from loratrace.replay.engines import GenerationSettings, VLLMEngine

    work = Path(tempfile.mkdtemp(prefix="bench-replay-"))
    models = ensure_tiny_models(Path(os.environ.get("LORATRACE_FIXTURES", REPO / ".fixtures")))
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

    def replay(store: Path):
        summary = run_replay(
            golden, base=str(models.base), adapters=adapters, engine=engine, store=store,
            max_new_tokens=args.max_new_tokens, chunk_size=args.chunk_size, progress=False,
        )  # fmt: skip
        assert summary.answers == answers, summary
        return summary

    # warm-up, untimed: every prompt through both arms once (prefix cache, first-batch costs, lazy imports)
    bare_run(engine, requests, chunk_rows, settings)
    replay(work / "store-warm-up")

    ratios, cpu_ratios, bare_rates, replay_rates, evaluator_ms, loads = [], [], [], [], [], []
    for pair in range(args.pairs):
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
