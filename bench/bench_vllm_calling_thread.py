"""The calling thread's share of loratrace's vLLM offline wrapper, per request, with no engine in the timing.

    .venv/bin/python bench/bench_vllm_calling_thread.py                      # this checkout
    .venv/bin/python bench/bench_vllm_calling_thread.py --repo /tmp/before   # another checkout, side by side

One real batch of 258 requests (base, a1, a2) is generated once; its ``RequestOutput`` objects are then finished
by loratrace's ``_BatchCall`` again and again, as ``LLM.generate``'s wrapper does after the engine returns (a
child generation per request: profile, timing, tokens, finish reasons, the task for the background thread). The
background thread is drained between repetitions, untimed. ``bench_vllm_overhead.py`` reads the same cost from
whole batches minus the engine's time, where five repetitions of ~900 ms batches leave it several µs of noise;
here only that code runs, so a fraction of a µs shows. ``--no-gc`` keeps the cyclic collector out of the timing.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path
from typing import Any

from _common import ENGINE_ENV, PROMPT, counting_providers, fixture_models

PROMPTS = 258


def _settings_of(wrapper: Any) -> Any:
    """The instrumentor's settings, from the closure of the wrapper ``instrument()`` put on ``LLM.generate``."""
    for cell in wrapper._self_wrapper.__closure__ or ():
        if type(cell.cell_contents).__name__ == "Settings":
            return cell.cell_contents
    raise SystemExit("no Settings in the wrapper's closure: this loratrace wraps LLM.generate differently")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repo", default=str(Path(__file__).resolve().parent.parent), help="checkout to measure")
    parser.add_argument("--repeats", type=int, default=200, help="batches finished")
    parser.add_argument("--no-gc", action="store_true", help="disable the cyclic garbage collector while timing")
    args = parser.parse_args()
    repo = Path(args.repo).resolve()
    if not (repo / "loratrace" / "__init__.py").is_file():
        parser.error(f"--repo {args.repo}: no loratrace/ package there (a checkout of this repository, decoder built)")
    sys.path.insert(0, str(repo))
    os.environ.update(ENGINE_ENV)
    import gc

    from vllm import LLM, SamplingParams
    from vllm.lora.request import LoRARequest

    import loratrace
    from loratrace.instrumentation.vllm import offline

    if not Path(loratrace.__file__).resolve().is_relative_to(repo):
        raise SystemExit(f"loratrace was imported from {loratrace.__file__}, not from --repo {repo}")

    try:
        from loratrace.runtime.finisher import finisher
    except ImportError:  # a checkout from before loratrace/runtime/
        from loratrace._finisher import finisher  # type: ignore[no-redef]

    models = fixture_models()
    llm = LLM(
        model=str(models.base), served_model_name="tiny-llama", dtype="float32", enforce_eager=True,
        enable_lora=True, max_lora_rank=8, max_loras=3, max_model_len=256,
    )  # fmt: skip
    loras = [None, *(LoRARequest(name, i + 1, str(models.adapters[name])) for i, name in enumerate(("a1", "a2")))]
    prompts = [f"{PROMPT} #{i}" for i in range(PROMPTS)]
    batch_loras = [loras[i % 3] for i in range(PROMPTS)]
    params = SamplingParams(max_tokens=16, temperature=0.0, ignore_eos=True)
    tracer_provider, meter_provider, _ = counting_providers()
    loratrace.instrument(tracer_provider=tracer_provider, meter_provider=meter_provider, libraries=["vllm"])
    try:
        outputs = llm.generate(prompts, params, lora_request=batch_loras, use_tqdm=False)
        settings = _settings_of(type(llm).__dict__["generate"])
        arguments = {"prompts": prompts, "sampling_params": params, "lora_request": batch_loras}
        per_request: list[float] = []
        gc.collect()
        if args.no_gc:
            gc.disable()
        for _ in range(args.repeats):
            call = offline._BatchCall(settings, llm, "text_completion", "vllm.LLM.generate", arguments)
            started = time.perf_counter_ns()
            call.finish(outputs)
            per_request.append((time.perf_counter_ns() - started) / len(outputs) / 1000)
            finisher.drain()
        gc.enable()
    finally:
        loratrace.uninstrument()
    deciles = statistics.quantiles(per_request, n=10)
    print(
        f"{loratrace.__file__}: finishing a request on the calling thread: median {statistics.median(per_request):.2f}"
        f" µs (p10 {deciles[0]:.2f}, p90 {deciles[-1]:.2f}; {args.repeats} batches of {len(outputs)}"
        f"{', gc off' if args.no_gc else ''})"
    )


if __name__ == "__main__":
    main()
