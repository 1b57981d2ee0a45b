"""loratrace cost: a TOML or JSON prices file, validated with clear errors; costs per adapter and per trace equal
the ones computed from the generator's records."""

from __future__ import annotations

import json
from collections import defaultdict
from pathlib import Path

import pytest
from click.testing import CliRunner
from polars.testing import assert_frame_equal

from loratrace.analysis import cost, window
from loratrace.cli import cli
from loratrace.errors import ConfigurationError

from .incident_store import Fixture, build

PRICES_TOML = """
unit = "1M"
currency = "USD"

[default]
input = 0.5
output = 1.5

[models."tiny-llama"]
input = 0.2
output = 0.6

[adapters.a2]
input = 0.3
output = 0.9
"""


@pytest.fixture(scope="module")
def fx(tmp_path_factory: pytest.TempPathFactory) -> Fixture:
    return build(tmp_path_factory.mktemp("cost"))


def _expected_cost(row: dict) -> float:
    if row["adapter_name"] == "a2":
        price = (0.3, 0.9)
    elif row["base_model_name"] == "tiny-llama" or row["model"] == "tiny-llama":
        price = (0.2, 0.6)
    else:
        price = (0.5, 1.5)
    return ((row["input_tokens"] or 0) * price[0] + (row["output_tokens"] or 0) * price[1]) / 1e6


def test_cost_per_adapter_and_per_trace_match_the_records(fx: Fixture, tmp_path: Path) -> None:
    (tmp_path / "prices.toml").write_text(PRICES_TOML)
    prices = cost.load_prices(tmp_path / "prices.toml")
    frame = cost.priced(window.generations(fx.store), prices)
    cost.require_priced(frame, source="prices.toml")
    by_adapter = cost.cost_by_adapter(frame).collect()
    expected: dict[str, list[float]] = defaultdict(lambda: [0, 0, 0, 0.0])
    per_trace: dict[str, float] = defaultdict(float)
    for r in fx.rows:
        if not r["operation_name"]:
            continue
        who = r["adapter_name"] or f"(base) {r['base_model_name']}"
        expected[who][0] += 1
        expected[who][1] += r["input_tokens"] or 0
        expected[who][2] += r["output_tokens"] or 0
        expected[who][3] += _expected_cost(r)
        per_trace[r["trace_id"]] += _expected_cost(r)
    got = {row["adapter"]: row for row in by_adapter.iter_rows(named=True)}
    assert set(got) == set(expected)
    for who, (n, tokens_in, tokens_out, total) in expected.items():
        assert (got[who]["generations"], got[who]["input_tokens"], got[who]["output_tokens"]) == (
            n,
            tokens_in,
            tokens_out,
        )
        assert got[who]["cost"] == pytest.approx(total)
    assert got["a2"]["priced_by"] == "adapter"
    assert got["a1"]["priced_by"] == "model"
    assert got["legacy-ft"]["priced_by"] == "model"  # its base model is priced
    top = cost.cost_by_trace(frame, limit=5).collect()
    best = sorted(per_trace.items(), key=lambda item: (-item[1], item[0]))[:5]
    assert top["trace_id"].to_list() == [t for t, _ in best]
    assert top["cost"].to_list() == pytest.approx([c for _, c in best])


def test_token_cells_from_duckdb_price_like_the_generations(fx: Fixture, tmp_path: Path) -> None:
    (tmp_path / "prices.toml").write_text(PRICES_TOML)
    prices = cost.load_prices(tmp_path / "prices.toml")
    per_generation = cost.cost_by_adapter(cost.priced(window.generations(fx.store), prices)).collect()
    cells = cost.store_token_cells(fx.store, since=None, until=None)
    by_cells = cost.cost_by_adapter(cost.priced(cells, prices)).collect()
    assert_frame_equal(by_cells, per_generation, check_dtypes=False)
    one = cost.store_token_cells(fx.store, since=None, until=None, adapter="a2", cohort="smb").collect()
    assert set(one["adapter_name"]) <= {"a2", None}
    assert one["generations"].sum() == sum(
        1 for r in fx.rows if r["operation_name"] and r["cohort"] == "smb" and r["adapter_name"] in ("a2", None)
    )


def test_json_prices_per_1k_and_the_default(fx: Fixture, tmp_path: Path) -> None:
    path = tmp_path / "prices.json"
    path.write_text(json.dumps({"unit": "1k", "default": {"input": 0.001, "output": 0.002}}))
    frame = cost.priced(window.generations(fx.store), cost.load_prices(path))
    total = cost.cost_by_adapter(frame).collect()["cost"].sum()
    gens = [r for r in fx.rows if r["operation_name"]]
    expected = sum(((r["input_tokens"] or 0) * 0.001 + (r["output_tokens"] or 0) * 0.002) / 1000 for r in gens)
    assert total == pytest.approx(expected)


@pytest.mark.parametrize(
    ("name", "text", "message"),
    [
        pytest.param("p.toml", 'unit = "1m"\n[default]\ninput=1\noutput=1', 'unit must be "1k" or "1M"', id="unit"),
        pytest.param(
            "p.toml", 'unit = "1k"\n[defaults]\ninput=1\noutput=1', "defaults (did you mean default?)", id="typo"
        ),
        pytest.param("p.toml", 'unit = "1k"\n[models.m]\ninput=1', "models.m needs output", id="missing"),
        pytest.param(
            "p.toml",
            'unit = "1k"\n[models.m]\ninput=-1\noutput=1',
            "models.m.input must be a non-negative",
            id="negative",
        ),
        pytest.param(
            "p.toml",
            'unit = "1k"\n[models.m]\ninput="cheap"\noutput=1',
            "models.m.input must be a non-negative",
            id="text",
        ),
        pytest.param("p.toml", 'unit = "1k"', "prices nothing", id="empty"),
        pytest.param("p.toml", "unit = ", "is not valid TOML", id="syntax"),
        pytest.param("p.json", "[1, 2]", "must hold a table", id="json-list"),
        pytest.param("p.yaml", "unit: 1k", "neither .toml nor .json", id="extension"),
    ],
)
def test_bad_prices_files_are_refused_naming_the_key(tmp_path: Path, name: str, text: str, message: str) -> None:
    path = tmp_path / name
    path.write_text(text)
    with pytest.raises(ConfigurationError) as caught:
        cost.load_prices(path)
    assert message in str(caught.value)


def test_cli_cost_and_its_errors(fx: Fixture, tmp_path: Path) -> None:
    runner = CliRunner()
    prices = tmp_path / "prices.toml"
    prices.write_text(PRICES_TOML)
    result = runner.invoke(cli, ["cost", "--store", str(fx.store), "--prices", str(prices), "--format", "json"])
    assert result.exit_code == 0, result.output
    rows = json.loads(result.output)["cost by adapter"]
    assert {r["adapter"] for r in rows} == {"a1", "a2", "legacy-ft", "(base) tiny-llama"}
    traces = runner.invoke(
        cli,
        ["cost", "--store", str(fx.store), "--prices", str(prices), "--by", "trace", "--limit", "3", "--format", "csv"],
    )
    assert traces.exit_code == 0, traces.output
    assert len(traces.output.splitlines()) == 4
    only_default = tmp_path / "partial.toml"
    only_default.write_text('unit = "1M"\n[models.other]\ninput = 1\noutput = 1\n')
    unpriced = runner.invoke(cli, ["cost", "--store", str(fx.store), "--prices", str(only_default)])
    assert unpriced.exit_code == 2
    assert "no price for base model(s) tiny-llama" in unpriced.output
    assert '[models."tiny-llama"]' in unpriced.output
    missing = runner.invoke(cli, ["cost", "--store", str(fx.store), "--prices", str(tmp_path / "nope.toml")])
    assert missing.exit_code == 2
    assert "cannot read the prices file" in missing.output
