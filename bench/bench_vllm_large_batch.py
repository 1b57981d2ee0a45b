"""A large offline vLLM batch through loratrace to a real collector: every request span arrives, or how many do not.

\b
    .venv/bin/python bench/bench_vllm_large_batch.py                   # 30,000 prompts, 1 token each (~4 min)
    .venv/bin/python bench/bench_vllm_large_batch.py --prompts 10000

``loratrace collect`` runs in its own process on 127.0.0.1 into a temporary store. One engine (tiny Llama, base /
a1 / a2 in turn), one ``LLM.generate`` of ``--prompts`` prompts per condition, with ``loratrace.instrument(
endpoint=...)`` (its own OTLP/HTTP pipeline: a BatchSpanProcessor with the SDK's defaults, a 2,048-span queue);
then ``loratrace.force_flush()`` and a count of the request spans that reached the store. Conditions: ``current``
and the baseline ``no-wait`` (the background thread asks for the export after every 512 spans without waiting for
it, as before session 6: the spans are handed to the processor faster than the exporter sends them).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _common import ENGINE_ENV, fixture_models, free_port, wait_ready


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--prompts", type=int, default=30_000)
    options = parser.parse_args()
    os.environ.update(ENGINE_ENV)
    import functools

    from vllm import LLM, SamplingParams
    from vllm.lora.request import LoRARequest

    import loratrace
    from loratrace.runtime.export_requests import export_requests

    models = fixture_models()
    store = Path(tempfile.mkdtemp(prefix="loratrace-large-batch-"))
    port = free_port()
    collector = subprocess.Popen(
        [sys.executable, "-m", "loratrace", "collect", "--store", str(store), "--http", f"127.0.0.1:{port}"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_ready(collector, f"http://127.0.0.1:{port}", time.monotonic() + 60, ready_path="/health")
        llm = LLM(
            model=str(models.base), served_model_name="tiny-llama", dtype="float32", enforce_eager=True,
            enable_lora=True, max_lora_rank=8, max_loras=3, max_model_len=256,
        )  # fmt: skip
        adapters = models.adapters
        loras = [None, LoRARequest("a1", 1, str(adapters["a1"])), LoRARequest("a2", 2, str(adapters["a2"]))]
        prompts = [f"Request number {index}" for index in range(options.prompts)]
        batch_loras = [loras[index % 3] for index in range(options.prompts)]
        params = SamplingParams(max_tokens=1, temperature=0.0)
        llm.generate(prompts[:30], params, lora_request=batch_loras[:30], use_tqdm=False)  # warm-up, untraced
        results = {}
        for condition in ("current", "no-wait"):
            state = loratrace.instrument(
                endpoint=f"http://127.0.0.1:{port}", service_name=f"large-batch-{condition}", libraries=["vllm"]
            )
            if condition == "no-wait":  # bench-only: the recorder asks for the export and does not wait
                recorder = state.instrumentors["vllm"]._settings.recorder
                flush = recorder.tracer.span_processor.force_flush
                recorder.request_export = functools.partial(export_requests.request, flush, 0.0)
            started = time.monotonic()
            llm.generate(prompts, params, lora_request=batch_loras, use_tqdm=False)
            generated = time.monotonic() - started
            flushed = loratrace.force_flush(timeout_millis=300_000)
            done = time.monotonic() - started
            loratrace.uninstrument()
            results[condition] = (generated, done, flushed)
        time.sleep(3)  # the collector commits what it acknowledged within its group-commit interval
        collector.terminate()
        collector.wait(timeout=60)
        answer = subprocess.run(
            [sys.executable, "-m", "loratrace", "sql", "--store", str(store), "--format", "json",
             "SELECT service_name, count(*) AS n FROM spans WHERE name LIKE 'text_completion %' GROUP BY 1"],
            capture_output=True, text=True, check=True,
        ).stdout  # fmt: skip
        counts = {row["service_name"]: row["n"] for row in json.loads(answer)}
        print(f"{options.prompts} prompts per batch, 1 token each, base / a1 / a2 in turn")
        for condition, (generated, done, flushed) in results.items():
            arrived = counts.get(f"large-batch-{condition}", 0)
            print(
                f"{condition:8s}: generate {generated:.1f} s, spans flushed {done:.1f} s after the call started "
                f"(force_flush {flushed}); request spans in the store {arrived} of {options.prompts} "
                f"({options.prompts - arrived} lost)"
            )
    finally:
        if collector.poll() is None:
            collector.kill()


if __name__ == "__main__":
    main()
