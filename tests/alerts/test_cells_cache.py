"""The cells cache is exact: checks with it equal checks without it, and late spans for cached windows rebuild it."""

from __future__ import annotations

import shutil
from datetime import timedelta

from loratrace.alerts.evaluate import evaluate
from loratrace.alerts.rules import load_rules
from loratrace.demo.traffic import Effect, Traffic, write_store

from .conftest import START

RULES = {
    "rules": [
        {"name": "d", "type": "drift", "metrics": ["eval_pass:quality", "error_rate"]},
        {"name": "s", "type": "spike", "metric": "error_rate", "window": "30m", "min_volume": 40},
        {"name": "f", "type": "fallback", "max_rate": 0.3, "window": "1h", "min_volume": 20},
    ]
}


def _values(result):
    return sorted((c.key, c.active, repr(sorted(c.values.items(), key=str))) for c in result.conditions)


def test_checks_with_the_cache_equal_checks_without_it(stream_store, tmp_path):
    ruleset = load_rules(RULES)
    cache = tmp_path / "cache"
    for hours in (2, 3.5, 5, 6.5, 8):
        at = START + timedelta(hours=hours)
        cached = evaluate(stream_store, ruleset, now=at, cache_dir=cache)
        fresh = evaluate(stream_store, ruleset, now=at)
        assert _values(cached) == _values(fresh)
        assert (cache / "cells.parquet").is_file()
    # replaying an earlier time does not use a cache made later
    early = START + timedelta(hours=1)
    assert _values(evaluate(stream_store, ruleset, now=early, cache_dir=cache)) == _values(
        evaluate(stream_store, ruleset, now=early)
    )


def test_late_spans_for_cached_windows_rebuild_the_cache(stream_store, tmp_path):
    store = tmp_path / "store"
    shutil.copytree(stream_store, store)
    ruleset = load_rules(RULES)
    cache = tmp_path / "cache"
    at = START + timedelta(hours=8)
    before = evaluate(store, ruleset, now=at, cache_dir=cache)
    # an hour of late exports for 01:00-02:00, long settled and cached: a2 fails on smb
    late = Traffic(
        start=START + timedelta(hours=1),
        duration=timedelta(hours=1),
        requests_per_hour=400,
        seed=99,
        effects=(Effect("a2", "eval_pass", -0.5, cohort="smb"),),
        # a2 with other weights (a swap): adapter ids follow the weights, not the seed
        swaps=(("a2", START + timedelta(hours=1)),),
    )
    write_store(late, store)
    after = evaluate(store, ruleset, now=at + timedelta(minutes=5), cache_dir=cache)
    fresh = evaluate(store, ruleset, now=at + timedelta(minutes=5))
    assert _values(after) == _values(fresh)

    # the late hour counts: its base spans join every base arm, and a2's new id (the swap) is a new cell
    def base_total(result):
        return sum(c.values["n_base"] for c in result.conditions if c.rule == "d")

    assert base_total(after) > base_total(before)
    assert len({c.key for c in after.conditions} - {c.key for c in before.conditions}) > 0
