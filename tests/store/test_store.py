"""Normalisation of every naming scheme, compaction, retention, readers in other processes, the embedded
exporter,
and ``loratrace sql``."""

from __future__ import annotations

import shutil
import subprocess
import sys
from datetime import date
from pathlib import Path

import polars as pl
import pytest
from click.testing import CliRunner
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from loratrace import semconv
from loratrace.cli import cli
from loratrace.collector.decode import RowBuffer
from loratrace.collector.embedded import StoreSpanExporter
from loratrace.store import ensure_store, query, scan_spans
from loratrace.store.compaction import compact_store
from loratrace.store.readers import counted_files
from loratrace.store.retention import apply_retention
from loratrace.store.segments import iter_segments, write_segments

PROMOTED = (
    "model",
    "input_tokens",
    "output_tokens",
    "ttft_ms",
    "provider_name",
    "operation_name",
    "finish_reason",
)


def _decode(attributes: dict, *, compiled: bool = False) -> dict:
    memory = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(memory))
    with provider.get_tracer("t").start_as_current_span("llm", attributes=attributes):
        pass
    buffer = RowBuffer()
    request = encode_spans(memory.get_finished_spans())
    if compiled:
        buffer.add_traces_bytes(request.SerializeToString())
    else:
        buffer.add_traces(request)
    row = buffer.take()["spans"].row(0, named=True)
    return {name: row[name] for name in PROMOTED}


@pytest.mark.parametrize(
    ("attributes", "expected"),
    [
        pytest.param(
            {
                "gen_ai.response.model": "a1",
                "gen_ai.usage.input_tokens": 3,
                "gen_ai.usage.output_tokens": 4,
                "gen_ai.response.time_to_first_chunk": 0.5,
                "gen_ai.provider.name": "huggingface",
                "gen_ai.operation.name": "text_completion",
                "gen_ai.response.finish_reasons": ("stop",),
            },
            ("a1", 3, 4, 500.0, "huggingface", "text_completion", "stop"),
            id="genai-loratrace",
        ),
        pytest.param(
            {
                "gen_ai.response.model": "lora-x",
                "gen_ai.usage.prompt_tokens": 12,
                "gen_ai.usage.completion_tokens": 9,
                "gen_ai.latency.time_to_first_token": 0.125,
                "gen_ai.system": "vllm",
                "gen_ai.response.finish_reasons": ("length",),
            },
            ("lora-x", 12, 9, 125.0, "vllm", None, "length"),
            id="vllm-native",
        ),
        pytest.param(
            {
                "openinference.span.kind": "LLM",
                "llm.model_name": "a2",
                "llm.token_count.prompt": 30,
                "llm.token_count.completion": 2,
                "llm.provider": "huggingface",
            },
            ("a2", 30, 2, None, "huggingface", None, None),
            id="openinference",
        ),
        pytest.param(
            {
                "gen_ai.system": "HuggingFace",
                "gen_ai.response.model": "base",
                "gen_ai.usage.prompt_tokens": 8,
                "gen_ai.usage.completion_tokens": 1,
                "llm.request.type": "completion",
            },
            ("base", 8, 1, None, "HuggingFace", "completion", None),
            id="openllmetry",
        ),
        pytest.param(
            {
                "gen_ai.request.model": "gpt-4o-mini",
                "gen_ai.usage.input_tokens": 5,
                "gen_ai.usage.output_tokens": 7,
                "gen_ai.provider.name": "openai",
                "gen_ai.operation.name": "chat",
            },
            ("gpt-4o-mini", 5, 7, None, "openai", "chat", None),
            id="client-side-request-model-only",
        ),
        pytest.param(
            {
                "openinference.span.kind": "LLM",
                "llm.request.model": "tiny-llama",
                "llm.token_count.prompt": 4,
                "llm.provider": "openai",
            },
            ("tiny-llama", 4, None, None, "openai", None, None),
            id="traceai-request-model-only",
        ),
        pytest.param(
            {"gen_ai.request.model": "asked-for", "gen_ai.response.model": "served"},
            ("served", None, None, None, None, None, None),
            id="the-response-model-wins-over-the-request-model",
        ),
    ],
)
@pytest.mark.parametrize("compiled", [False, True], ids=["python", "compiled"])
def test_every_naming_scheme_fills_the_promoted_columns(attributes: dict, expected: tuple, compiled: bool) -> None:
    assert tuple(_decode(attributes, compiled=compiled).values()) == expected


def _write(store: Path, spans: list[tuple[str, str, int]], *, walend: int) -> None:
    frame = pl.DataFrame(
        {
            "trace_id": [t for t, _, _ in spans],
            "span_id": [s for _, s, _ in spans],
            "start_time": [us for _, _, us in spans],
            "attributes": ["{}"] * len(spans),
        }
    ).with_columns(pl.col("start_time").cast(pl.Datetime("us")))
    write_segments(store, {"spans": frame}, walend=walend, kind="flush")


def test_compaction_merges_small_segments_and_drops_duplicates(tmp_path: Path) -> None:
    store = ensure_store(tmp_path / "s")
    day_us = 1_796_000_000_000_000
    for i in range(8):
        _write(store, [(f"{i:032x}", f"{i:016x}", day_us), ("f" * 32, "e" * 16, day_us)], walend=i + 1)
    assert query(store, "SELECT count(*) AS n FROM spans")["n"][0] == 16
    assert compact_store(store, min_segments=8, activation_delay_s=0) == 1
    # the inputs stay (readers may have listed them) but only the merged segment counts
    assert len(list(iter_segments(store, "spans"))) == 9
    counted = [p.name.split("-")[:2] for p in counted_files(store, "spans") if p.name != "_schema.parquet"]
    assert counted == [["00000000000000000008", "merged"]]
    assert query(store, "SELECT count(*) AS n FROM spans")["n"][0] == 9  # 8 distinct + the repeated span once
    assert compact_store(store, min_segments=8, grace_s=0) == 0  # grace over: the covered inputs go
    assert [p.name.split("-")[:2] for p in iter_segments(store, "spans")] == [["00000000000000000008", "merged"]]
    assert query(store, "SELECT count(*) AS n FROM spans")["n"][0] == 9


def test_retention_drops_old_days_and_new_keys_never_break_old_segments(tmp_path: Path) -> None:
    store = ensure_store(tmp_path / "s")
    old_us, new_us = 1_700_000_000_000_000, 1_796_000_000_000_000  # 2023-11-14 and 2026-11-30
    _write(store, [("a" * 32, "a" * 16, old_us)], walend=1)
    frame = pl.DataFrame(
        {
            "trace_id": ["b" * 32],
            "span_id": ["b" * 16],
            "start_time": [new_us],
            "attributes": ['{"brand.new.key": 5}'],
        }
    ).with_columns(pl.col("start_time").cast(pl.Datetime("us")))
    write_segments(store, {"spans": frame}, walend=2, kind="flush")
    rows = query(store, "SELECT span_id, attributes['brand.new.key'] AS k FROM spans ORDER BY span_id").rows()
    assert rows == [("a" * 16, None), ("b" * 16, "5")]
    removed = apply_retention(store, days=30, today=date(2026, 11, 30))
    assert [p.name for p in removed] == ["date=2023-11-14"]
    assert query(store, "SELECT span_id FROM spans").rows() == [("b" * 16,)]


def test_embedded_exporter_reader_in_another_process_polars_scan_and_moved_store(tmp_path: Path) -> None:
    store = tmp_path / "s"
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(StoreSpanExporter(store)))
    tracer = provider.get_tracer("t")
    for name in ("a1", "a2", "a1"):
        with tracer.start_as_current_span("gen", attributes={semconv.ADAPTER_NAME: name}):
            pass
    provider.shutdown()
    code = (
        "import sys; from loratrace.store import query; "
        "print(query(sys.argv[1], "
        "'SELECT adapter_name, count(*) AS n FROM spans GROUP BY 1 ORDER BY 1').rows())"
    )
    out = subprocess.run([sys.executable, "-c", code, str(store)], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[('a1', 2), ('a2', 1)]"
    counted = scan_spans(store).group_by("adapter_name").len().sort("adapter_name").collect()
    assert counted.rows() == [("a1", 2), ("a2", 1)]
    moved = tmp_path / "elsewhere"
    shutil.move(str(store), moved)
    assert query(moved, "SELECT count(*) AS n FROM spans")["n"][0] == 3


def test_sql_command_formats_and_errors(tmp_path: Path) -> None:
    store = ensure_store(tmp_path / "s")
    _write(store, [("a" * 32, "b" * 16, 1_796_000_000_000_000)], walend=1)
    runner = CliRunner()
    sql = "SELECT span_id, 2 AS n, NULL AS x FROM spans"
    table = runner.invoke(cli, ["sql", "--store", str(store), sql])
    assert table.output == "span_id           n  x\n----------------  -  -\n" + "b" * 16 + "  2\n(1 row)\n"
    as_json = runner.invoke(cli, ["sql", "--store", str(store), "--format", "json", sql])
    assert as_json.output == '[{"span_id": "' + "b" * 16 + '", "n": 2, "x": null}]\n'
    as_csv = runner.invoke(cli, ["sql", "--store", str(store), "--format", "csv", sql])
    assert as_csv.output == "span_id,n,x\n" + "b" * 16 + ",2,\n"
    unknown_table = runner.invoke(cli, ["sql", "--store", str(store), "SELECT * FROM spams"])
    assert unknown_table.exit_code == 1
    assert "Tables in this store: spans, span_events, span_links, metrics, evals" in unknown_table.output
    unknown_column = runner.invoke(cli, ["sql", "--store", str(store), "SELECT adaptor FROM spans"])
    assert unknown_column.exit_code == 1
    assert "Columns of spans: trace_id, span_id" in unknown_column.output
    missing = runner.invoke(cli, ["sql", "--store", str(tmp_path / "nope"), "SELECT 1"])
    assert missing.exit_code == 1
    assert "is not a loratrace store" in missing.output


def test_sql_on_a_catalog_another_process_holds_read_write_is_a_clear_error(tmp_path: Path) -> None:
    """DuckDB refuses every other connection, read-only ones too, while a process holds the file read-write;
    ``loratrace sql`` printed a Python traceback."""
    store = ensure_store(tmp_path / "s")
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import duckdb, sys; con = duckdb.connect(sys.argv[1]); print('held', flush=True); sys.stdin.read()",
            str(store / "catalog.duckdb"),
        ],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None
        assert holder.stdout.readline() == "held\n"  # the read-write connection is open from here on
        result = CliRunner().invoke(cli, ["sql", "--store", str(store), "SELECT 1"])
    finally:
        holder.communicate("", timeout=60)
    assert result.exit_code == 1
    assert result.exception is None or isinstance(result.exception, SystemExit)
    assert f"is held open for writing by another process (PID {holder.pid})" in result.output
    assert "-readonly" in result.output
    assert "Traceback" not in result.output


def test_loratrace_store_variable_stands_for_store(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    store = ensure_store(tmp_path / "s")
    _write(store, [("a" * 32, "b" * 16, 1_796_000_000_000_000)], walend=1)
    monkeypatch.setenv("LORATRACE_STORE", str(store))
    result = CliRunner().invoke(cli, ["sql", "--format", "csv", "SELECT span_id FROM spans"])
    assert (result.exit_code, result.output) == (0, "span_id\n" + "b" * 16 + "\n")
    assert "LORATRACE_STORE" in CliRunner().invoke(cli, ["sql", "--help"]).output
    monkeypatch.delenv("LORATRACE_STORE")
    missing = CliRunner().invoke(cli, ["sql", "SELECT 1"])
    assert missing.exit_code == 2
    assert "--store" in missing.output
