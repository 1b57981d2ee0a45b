"""The whole path with no loratrace code in the app: ``opentelemetry-instrument python app.py`` serving a PEFT
model, OTLP/HTTP to a real ``loratrace collect`` subprocess, then SQL over the store."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

from loratrace.instrumentation._adapter_identity import identity_from_directory
from loratrace.store import query

APP = textwrap.dedent(
    """
    import sys
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    base_path, a1, a2 = sys.argv[1:4]
    tokenizer = AutoTokenizer.from_pretrained(base_path)
    model = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(base_path), a1, adapter_name="a1")
    model.load_adapter(a2, adapter_name="a2")
    inputs = tokenizer(["Invoices are due", "Please reset my password"], return_tensors="pt", padding=True)
    for adapter in ("a1", "a2"):
        model.set_adapter(adapter)
        model.generate(**inputs, max_new_tokens=4, do_sample=False)
    with model.disable_adapter():
        model.generate(**inputs, max_new_tokens=4, do_sample=False)
    """
)


def test_opentelemetry_instrument_app_to_loratrace_collector(tmp_path: Path, tiny_models, collector) -> None:
    app = tmp_path / "app.py"
    app.write_text(APP)
    launcher = str(Path(sys.executable).with_name("opentelemetry-instrument"))
    env = {
        **os.environ,
        "OTEL_SERVICE_NAME": "support-bot",
        "OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf",
        "OTEL_EXPORTER_OTLP_ENDPOINT": collector.http,
        "OTEL_METRICS_EXPORTER": "otlp",
        "OTEL_LOGS_EXPORTER": "none",
        "HF_HUB_OFFLINE": "1",
    }
    adapters = tiny_models.adapters
    result = subprocess.run(
        [launcher, sys.executable, str(app), str(tiny_models.base), str(adapters["a1"]), str(adapters["a2"])],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    ids = {name: identity_from_directory(path, name).id for name, path in adapters.items()}
    sql = (
        "SELECT service_name, coalesce(adapter_name, 'base') AS served, adapter_id, adapter_rank, adapter_alpha, "
        "variant, input_tokens FROM spans WHERE operation_name = 'text_completion' ORDER BY served, input_tokens"
    )
    rows = collector.wait_until(
        lambda: (r := query(collector.store, sql).rows()) and len(r) == 6 and r,
        timeout=30,
        what="the app's six generation spans in the store (one per prompt row of each batched generate)",
    )
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(tiny_models.base)
    # each prompt row its own span, its own tokens with the padding excluded
    encoded = tokenizer(["Invoices are due", "Please reset my password"], return_tensors="pt", padding=True)
    row_tokens = sorted(int(n) for n in encoded["attention_mask"].sum(dim=1))
    assert rows == [
        *[("support-bot", "a1", ids["a1"], 4, 8.0, "adapter", n) for n in row_tokens],
        *[("support-bot", "a2", ids["a2"], 8, 16.0, "adapter", n) for n in row_tokens],
        *[("support-bot", "base", None, None, None, "base", n) for n in row_tokens],
    ]
    metrics = collector.wait_until(
        lambda: (
            query(
                collector.store,
                "SELECT DISTINCT adapter_name FROM metrics WHERE name = 'gen_ai.client.operation.duration' "
                "AND adapter_name IS NOT NULL ORDER BY 1",
            )["adapter_name"].to_list()
            == ["a1", "a2"]
        ),
        timeout=30,
        what="the duration histogram per adapter in the metrics view",
    )
    assert metrics
