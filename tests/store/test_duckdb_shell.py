"""The plain ``duckdb`` shell (the duckdb-cli distribution, an older DuckDB than the library) reads the store."""

from __future__ import annotations

import csv
import io
import shutil
import subprocess
import sysconfig
from pathlib import Path

import pytest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor

from loratrace import semconv
from loratrace.collector.embedded import StoreSpanExporter

DUCKDB_SHELL = shutil.which("duckdb", path=sysconfig.get_path("scripts"))


@pytest.mark.skipif(DUCKDB_SHELL is None, reason="the duckdb-cli dev dependency is not installed")
def test_duckdb_shell_opened_inside_a_copied_store_reads_the_views(tmp_path: Path) -> None:
    store = tmp_path / "traces"
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(StoreSpanExporter(store)))
    tracer = provider.get_tracer("shell-test")
    for adapter, cohort in (("a1", "enterprise"), ("a2", "smb"), ("a1", "smb")):
        with tracer.start_as_current_span(
            "text_completion tiny-llama",
            attributes={semconv.ADAPTER_NAME: adapter, semconv.COHORT: cohort, semconv.ADAPTER_RANK: 4},
        ) as span:
            span.add_event(
                semconv.GEN_AI_EVALUATION_RESULT_EVENT,
                {semconv.GEN_AI_EVALUATION_NAME: "judge", semconv.EVALUATION_PASSED: adapter == "a1"},
            )
    provider.shutdown()
    copied = tmp_path / "copied-elsewhere"
    shutil.copytree(store, copied)
    shutil.rmtree(store)  # nothing may point back at the original folder
    result = subprocess.run(
        [
            DUCKDB_SHELL,
            "-readonly",
            "-csv",
            "catalog.duckdb",
            "-c",
            "SELECT adapter_name, cohort, adapter_rank, attributes['loratrace.cohort'] AS from_map "
            "FROM spans ORDER BY adapter_name, cohort",
            "-c",
            "SELECT adapter_name, count(*) FILTER (WHERE passed) AS passed FROM evals GROUP BY 1 ORDER BY 1",
        ],
        cwd=copied,
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    tables = [list(csv.reader(io.StringIO(block))) for block in result.stdout.strip().split("\n\n")]
    rows = [row for table in tables for row in table]
    assert rows == [
        ["adapter_name", "cohort", "adapter_rank", "from_map"],
        ["a1", "enterprise", "4", "enterprise"],
        ["a1", "smb", "4", "smb"],
        ["a2", "smb", "4", "smb"],
        ["adapter_name", "passed"],
        ["a1", "2"],
        ["a2", "0"],
    ]
