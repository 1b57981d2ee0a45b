"""loratrace adapters: the inventory of a real store matches what the generator planted (a swap, a prompt change,
an adapter without id), computed independently from the records; bad input exits 2."""

from __future__ import annotations

import json
from collections import defaultdict
from datetime import timedelta

import polars as pl
import pytest
from click.testing import CliRunner
from polars.testing import assert_frame_equal

from loratrace.analysis import window
from loratrace.analysis.inventory import inventory, inventory_of_cells, store_cells
from loratrace.cli import cli

from .incident_store import START, SWAP_AT, Fixture, build


@pytest.fixture(scope="module")
def fx(tmp_path_factory: pytest.TempPathFactory) -> Fixture:
    return build(tmp_path_factory.mktemp("inventory"))


def _generation_rows(fx: Fixture) -> list[dict]:
    return [r for r in fx.rows if r["operation_name"]]


def test_inventory_matches_the_records(fx: Fixture) -> None:
    result = inventory(window.generations(fx.store))
    served: dict[tuple, list[dict]] = defaultdict(list)
    for r in _generation_rows(fx):
        served[r["served_by"], r["adapter_id"]].append(r)
    got = {(row["adapter"], row["adapter_id"]): row for row in result.adapters.iter_rows(named=True)}
    assert set(got) == set(served)
    for key, rows in served.items():
        assert got[key]["generations"] == len(rows)
        assert got[key]["first_seen"] == min(r["start_time"] for r in rows)
        assert got[key]["last_seen"] == max(r["start_time"] for r in rows)
        assert got[key]["cohorts"] == sorted({r["cohort"] for r in rows})
        assert got[key]["routes"] == sorted({r["route_name"] for r in rows})

    volume: dict[tuple, int] = defaultdict(int)
    for r in _generation_rows(fx):
        volume[r["served_by"], r["cohort"]] += 1
    assert {
        (row["adapter"], row["cohort"]): row["generations"] for row in result.cohorts.iter_rows(named=True)
    } == volume
    totals = result.cohorts.group_by("adapter").agg(pl.col("share").sum())
    assert all(abs(s - 1.0) < 1e-9 for s in totals["share"])


def test_cells_from_duckdb_give_the_same_tables_as_polars(fx: Fixture) -> None:
    since = (START + timedelta(minutes=40)).replace(tzinfo=None)
    by_polars = inventory(window.within(window.generations(fx.store), since=since))
    by_duckdb = inventory_of_cells(store_cells(fx.store, since=since, until=None))
    for name in ("adapters", "cohorts", "id_changes"):
        assert_frame_equal(getattr(by_duckdb, name), getattr(by_polars, name), check_dtypes=False)
    assert store_cells(fx.store, since=since.replace(year=2020), until=since.replace(year=2021)).collect().height == 0


def test_a_swap_is_one_change_with_its_window(fx: Fixture) -> None:
    changes = inventory(window.generations(fx.store)).id_changes
    ids: dict[str, list] = defaultdict(list)
    for r in _generation_rows(fx):
        if r["adapter_name"] == "a2":
            ids[r["adapter_id"]].append(r["start_time"])
    (old, old_times), (new, new_times) = sorted(ids.items(), key=lambda item: min(item[1]))
    assert changes.rows(named=True) == [
        {
            "adapter": "a2",
            "old_adapter_id": old,
            "new_adapter_id": new,
            "old_last_seen": max(old_times),
            "new_first_seen": min(new_times),
            "overlap": False,
            "new_id_generations": len(new_times),
        }
    ]
    assert max(old_times) < SWAP_AT.replace(tzinfo=None) <= min(new_times)


def test_cli_adapters_json_and_window(fx: Fixture) -> None:
    since = (START + timedelta(hours=1, minutes=30)).isoformat()
    result = CliRunner().invoke(cli, ["adapters", "--store", str(fx.store), "--since", since, "--format", "json"])
    assert result.exit_code == 0, result.output
    payload = json.loads(result.output)
    assert set(payload) == {"adapters", "cohorts", "changes"}
    assert payload["changes"] == []  # after the swap only the new id serves
    cutoff = (START + timedelta(hours=1, minutes=30)).replace(tzinfo=None)
    expected = sum(1 for r in _generation_rows(fx) if r["start_time"] >= cutoff)
    assert sum(a["generations"] for a in payload["adapters"]) == expected
    one = CliRunner().invoke(cli, ["adapters", "--store", str(fx.store), "--view", "changes", "--format", "csv"])
    assert one.exit_code == 0, one.output
    assert one.output.splitlines()[0].startswith("adapter,old_adapter_id,new_adapter_id")
    assert len(one.output.splitlines()) == 2


@pytest.mark.parametrize(
    ("args", "message"),
    [
        pytest.param(
            ["--adapter", "a22"],
            "--adapter 'a22': no adapter of that name in the window (did you mean a2",
            id="adapter",
        ),
        pytest.param(["--cohort", "smv"], "did you mean smb", id="cohort"),
        pytest.param(
            ["--since", "2020-01-01", "--until", "2020-01-02"], "the store has data on 2026-03-02", id="empty-window"
        ),
        pytest.param(
            ["--since", "tomorrow"],
            "--since: expected an ISO time (2026-11-30T08:00:00Z) or a duration ago (24h, 7d), got 'tomorrow'",
            id="bad-since",
        ),
        pytest.param(["--since", "1h", "--until", "2h"], "the window is empty", id="reversed"),
        pytest.param(["--format", "csv"], "csv holds one table: pass --view", id="csv-needs-view"),
    ],
)
def test_cli_adapters_bad_input_exits_2(fx: Fixture, args: list[str], message: str) -> None:
    result = CliRunner().invoke(cli, ["adapters", "--store", str(fx.store), *args])
    assert result.exit_code == 2, result.output
    assert message in result.output
