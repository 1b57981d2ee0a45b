"""``loratrace sql`` reads the store and nothing else, unless --full-engine: real DuckDB, real files."""

from __future__ import annotations

from pathlib import Path

import duckdb
import polars as pl
import pytest
from click.testing import CliRunner
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.trace.v1.trace_pb2 import ResourceSpans, ScopeSpans, Span

from loratrace.cli import cli
from loratrace.collector.decode import RowBuffer
from loratrace.store import ensure_store, open_store, query
from loratrace.store.segments import write_segments


@pytest.fixture
def store(tmp_path: Path) -> Path:
    path = ensure_store(tmp_path / "store")
    spans = [
        Span(trace_id=bytes([i]) * 16, span_id=bytes([i]) * 8, name="s", start_time_unix_nano=1, end_time_unix_nano=2)
        for i in (1, 2)
    ]
    buffer = RowBuffer()
    buffer.add_traces(ExportTraceServiceRequest(resource_spans=[ResourceSpans(scope_spans=[ScopeSpans(spans=spans)])]))
    write_segments(path, buffer.take(), walend=0, kind="flush")
    return path


def _sql(store: Path, statement: str, *flags: str):
    return CliRunner().invoke(cli, ["sql", "--store", str(store), *flags, statement])


def test_reading_the_store_works_as_before(store: Path) -> None:
    result = _sql(store, "SELECT count(*) AS n FROM spans", "--format", "csv")
    assert (result.exit_code, result.output) == (0, "n\n2\n")
    assert query(store, "SELECT count(*) AS n FROM generations")["n"][0] >= 0


def test_copy_to_a_file_is_refused_and_writes_nothing(store: Path, tmp_path: Path) -> None:
    target = tmp_path / "victim.csv"
    target.write_text("precious\n")
    result = _sql(store, f"COPY (SELECT 1) TO '{target}' (HEADER false)")
    assert result.exit_code == 1
    assert "COPY statements are not run over a store" in result.output
    assert "--full-engine" in result.output
    assert target.read_text() == "precious\n"


def test_copy_overwrite_cannot_empty_a_folder(store: Path, tmp_path: Path) -> None:
    folder = tmp_path / "reports"
    folder.mkdir()
    (folder / "keep.txt").write_text("keep")
    result = _sql(store, f"COPY (SELECT 1 AS a) TO '{folder}' (FORMAT parquet, PARTITION_BY (a), OVERWRITE)")
    assert result.exit_code == 1
    assert (folder / "keep.txt").read_text() == "keep"


def test_attach_read_write_cannot_change_another_database(store: Path, tmp_path: Path) -> None:
    other = tmp_path / "other.duckdb"
    with duckdb.connect(str(other)) as con:
        con.execute("CREATE TABLE t AS SELECT 1 AS x")
    result = _sql(store, f"ATTACH '{other}' AS o (READ_WRITE)")
    assert result.exit_code == 1
    assert "ATTACH statements are not run over a store" in result.output
    with duckdb.connect(str(other)) as con:
        assert con.execute("SELECT x FROM t").fetchall() == [(1,)]


@pytest.mark.parametrize(
    "function", ["read_text('{secret}')", "read_csv('{secret}')", "glob('{outside}/*')", "read_blob('{secret}')"]
)
def test_files_outside_the_store_cannot_be_read(store: Path, tmp_path: Path, function: str) -> None:
    secret = tmp_path / "secret.txt"
    secret.write_text("password=hunter2\n")
    statement = f"SELECT * FROM {function.format(secret=secret, outside=tmp_path)}"
    result = _sql(store, statement)
    assert result.exit_code == 1
    assert "hunter2" not in result.output
    assert "Permission Error" in result.output


def test_configuration_cannot_be_unlocked_from_a_query(store: Path) -> None:
    result = _sql(store, "SELECT current_setting('enable_external_access') AS e; SET enable_external_access = true")
    assert result.exit_code == 1
    assert "SET statements are not run over a store" in result.output
    con = open_store(store)
    try:  # and were a SET let through, DuckDB itself refuses to widen access while the database is open
        with pytest.raises(duckdb.InvalidInputException, match="Cannot enable external access"):
            con.execute("SET enable_external_access = true")
        with pytest.raises(duckdb.InvalidInputException, match="allowed_directories"):
            con.execute("SET allowed_directories = ['/']")
    finally:
        con.close()


def test_full_engine_is_the_explicit_way_out(store: Path, tmp_path: Path) -> None:
    target = tmp_path / "export.csv"
    result = _sql(store, f"COPY (SELECT count(*) AS n FROM spans) TO '{target}' (HEADER false)", "--full-engine")
    assert result.exit_code == 0, result.output
    assert target.read_text() == "2\n"
    frame = query(store, f"SELECT * FROM read_csv('{target}', header=false)", full_engine=True)
    assert frame.to_series().to_list() == [2]
    assert isinstance(frame, pl.DataFrame)


def test_connections_sharing_a_database_instance_stay_confined(store: Path, tmp_path: Path) -> None:
    """DuckDB shares one instance (and its locked configuration) per file and process: a long-lived confined
    connection must not break later queries, and must not let a full-engine one through."""
    from loratrace.errors import StoreError

    held = open_store(store)
    try:
        assert query(store, "SELECT count(*) AS n FROM spans")["n"][0] == 2
        with pytest.raises(StoreError, match="full engine cannot be had here"):
            query(store, "SELECT 1", full_engine=True)
        with pytest.raises(duckdb.PermissionException):
            held.execute(f"SELECT * FROM read_text('{tmp_path}/x')")
    finally:
        held.close()
    (tmp_path / "outside.txt").write_text("x")
    assert query(store, f"SELECT count(*) AS n FROM glob('{tmp_path}/*.txt')", full_engine=True)["n"][0] == 1
