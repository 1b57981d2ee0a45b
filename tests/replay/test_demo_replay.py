"""The demo's replay step: paired drift rows and the gate's decision for each adapter, on the real tiny models."""

from __future__ import annotations

import polars as pl

from loratrace.demo.replay_step import EXAMPLES, GATED_METRIC, gate_decisions, replay_and_compare


def test_demo_replay_shows_paired_rows_and_gate_decisions(tiny_models, tmp_path):
    store, rows = replay_and_compare(tiny_models, tmp_path)
    overall = rows.filter((pl.col("cohort") == "(all)") & (pl.col("metric") == GATED_METRIC))
    assert set(overall["design"]) == {"paired"}
    assert set(overall["n_base"]) == {EXAMPLES}
    decisions = gate_decisions(store, ["a1", "a2"])
    assert [(adapter, decision) for adapter, decision, _ in decisions] == [("a1", "FAIL"), ("a2", "FAIL")]
    for _, _, reasons in decisions:
        assert reasons[0].startswith(f"regressed: cohort (all), {GATED_METRIC}")
