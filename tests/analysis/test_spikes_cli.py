"""``loratrace spikes`` on a store of seeded traffic with one planted fallback spike (CliRunner, real store)."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import pytest
from click.testing import CliRunner
from polars.testing import assert_frame_equal

from loratrace.cli import cli
from loratrace.demo.traffic import Effect, Traffic, write_store

START = dt.datetime(2026, 3, 2, tzinfo=dt.timezone.utc)
SPIKE_START = START + dt.timedelta(hours=30)
SPIKE_END = SPIKE_START + dt.timedelta(hours=4)


@pytest.fixture(scope="module")
def spike_store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    store = tmp_path_factory.mktemp("spikes") / "store"
    traffic = Traffic(
        start=START,
        duration=dt.timedelta(hours=48),
        requests_per_hour=60,
        effects=(Effect(adapter="a1", metric="fallback", delta=0.10, start=SPIKE_START, end=SPIKE_END),),
        seed=15,
    )
    write_store(traffic, store)
    return store


def run(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(cli, ["spikes", *args])
    return result.exit_code, result.output


def test_the_planted_spike_is_the_only_episode(spike_store: Path) -> None:
    code, output = run("--store", str(spike_store), "--format", "json")
    assert code == 0, output
    document = json.loads(output)
    episodes = [(e["adapter"], e["metric"], e["start"], e["end"]) for e in document["episodes"]]
    assert len(episodes) == 1, episodes
    adapter, metric, start, end = episodes[0]
    assert (adapter, metric) == ("a1", "fallback_rate")
    assert SPIKE_START <= dt.datetime.fromisoformat(start) <= SPIKE_START + dt.timedelta(hours=1)
    assert dt.datetime.fromisoformat(end) == SPIKE_END
    # every arm × metric × hour is there: base, a1, a2 × 4 metrics × 48 windows
    assert len(document["windows"]) == 3 * 4 * 48
    assert {w["adapter"] for w in document["windows"]} == {None, "a1", "a2"}


def test_the_table_names_the_episode_and_the_base_arm(spike_store: Path) -> None:
    code, output = run("--store", str(spike_store), "--metric", "fallback_rate", "--adapter", "a1")
    assert code == 0, output
    assert output.startswith("Spike episodes (1):")
    assert "fallback_rate" in output
    code, output = run("--store", str(spike_store), "--adapter", "(base)", "--format", "csv")
    assert code == 0, output
    rows = output.splitlines()
    assert rows[0].split(",")[:4] == ["adapter", "adapter_id", "metric", "window_start"]
    assert len(rows) == 1 + 4 * 48
    assert all(row.startswith(",,") for row in rows[1:])  # the base arm: no adapter name, no id


def test_a_range_restricts_the_windows(spike_store: Path) -> None:
    code, output = run(
        "--store", str(spike_store), "--since", "2026-03-02T06:00", "--until", "2026-03-02T12:00", "--format", "json"
    )
    assert code == 0, output
    starts = {w["window_start"] for w in json.loads(output)["windows"]}
    assert starts == {(START + dt.timedelta(hours=h)).isoformat() for h in range(6, 12)}


@pytest.mark.parametrize(
    ("args", "message"),
    [
        pytest.param(
            ["--adapter", "a3"],
            "--adapter: no adapter 'a3' served in this range. Did you mean 'a2', 'a1'? Known: (base), a1, a2",
            id="adapter",
        ),
        pytest.param(
            ["--metric", "falback_rate"],
            "--metric: 'falback_rate' is not a rate a spike check watches. Did you mean 'fallback_rate',",
            id="metric",
        ),
        pytest.param(["--window", "0h"], "--window: expected a positive duration, got '0h'", id="window"),
        pytest.param(["--since", "yesterday"], "a duration ago (24h, 7d), got 'yesterday'", id="since"),
        pytest.param(["--since", "2030-01-01"], "the store's generations run from 2026-03-02T00:00", id="empty"),
    ],
)
def test_bad_input_is_exit_code_2_with_a_hint(spike_store: Path, args: list[str], message: str) -> None:
    code, output = run("--store", str(spike_store), *args)
    assert code == 2, output
    assert message in " ".join(output.split())


@pytest.mark.parametrize(
    "knob",
    [
        pytest.param(["--persistence", "5"], id="longer-than-the-spike"),
        pytest.param(["--min-change", "20"], id="a-21x-rise-needed"),
        pytest.param(["--min-n", "1000"], id="volume-floor-above-the-traffic"),
        # one day of history: the same-hour baseline is still warming up on the second day
        pytest.param(["--baseline", "same_hour"], id="same-hour-after-one-day"),
    ],
)
def test_the_knobs_reach_the_check(spike_store: Path, knob: list[str]) -> None:
    code, output = run("--store", str(spike_store), "--metric", "fallback_rate", "--format", "json", *knob)
    assert code == 0, output
    assert json.loads(output)["episodes"] == []


def test_run_spikes_takes_settings_whole_or_by_name(spike_store: Path) -> None:
    from loratrace.analysis.spike_run import run_spikes
    from loratrace.analysis.spikes import SpikeSettings

    assert run_spikes(spike_store, metric_names=["fallback_rate"]).episodes.height == 1
    by_name = run_spikes(spike_store, metric_names=["fallback_rate"], persistence=5)
    whole = run_spikes(spike_store, SpikeSettings(persistence=5), metric_names=["fallback_rate"])
    assert by_name.episodes.is_empty()  # five windows in a row: longer than the planted spike
    assert_frame_equal(by_name.windows, whole.windows)
    with pytest.raises(TypeError, match="'persist'"):
        run_spikes(spike_store, persist=5)  # type: ignore[call-arg]
