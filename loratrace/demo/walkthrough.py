"""``loratrace demo``: the whole path on a local tiny model, offline.

1. Build a tiny Llama and two LoRA adapters on local disk (no download).
2. ``loratrace.instrument(store=...)``: spans go straight into a local loratrace store (Parquet + DuckDB catalog).
3. Serve prompts through transformers + PEFT (base, a1, a2, two cohorts, a schema retry, a fallback, evals) and,
   when vLLM is installed, through vLLM's offline engine with base and both adapters in one batch.
4. Print the spans the store now holds, and answer a few incident questions in SQL.
5. Replay a small golden set through the base model and both adapters; show the paired drift rows and the
   release gate's decision for each adapter.
6. Add a day of simulated traffic (seeded, labelled: service ``loratrace-traffic``, route ``simulated``) in which
   one adapter regresses on one cohort and another spikes in fallbacks.
7. Run the analyses on the store and find both; write the HTML report.
"""

from __future__ import annotations

import importlib.util
import json
import os
from pathlib import Path

import click

import loratrace
from loratrace.demo.tiny_model import TinyModels, ensure_tiny_models

PROMPTS = {
    "enterprise": ["Invoices are due", "Return a JSON object with the fields name, plan and seats."],
    "smb": ["Please reset my password", "What is the capital of France?"],
}
SPAN_TABLE_SQL = """
SELECT
    strftime(to_timestamp(start_time_unix_nano / 1e9), '%H:%M:%S') AS time,
    provider_name AS provider,
    model,
    coalesce(adapter_name, '-') AS adapter,
    CASE WHEN adapter_id IS NULL THEN '-' ELSE substr(adapter_id, 1, 19) END AS adapter_id,
    adapter_rank AS rank,
    adapter_alpha AS alpha,
    variant,
    coalesce(cohort, '-') AS cohort,
    input_tokens AS "in",
    output_tokens AS "out",
    round(duration_ns / 1e6, 1) AS ms,
    coalesce(schema_attempts::VARCHAR, '-') AS attempts,
    fallback,
    served_after_fallback AS after_fallback
FROM generations
ORDER BY start_time_unix_nano
"""
QUESTIONS = {
    "Which adapter served how much, and how fast?": """
        SELECT coalesce(adapter_name, '(base)') AS adapter, provider_name AS provider, count(*) AS generations,
               sum(output_tokens) AS output_tokens, round(median(duration_ns) / 1e6, 1) AS median_ms
        FROM generations
        GROUP BY ALL ORDER BY adapter, provider""",
    "Where did requests fall back, and why? (fallback: the answer given up on, once per fallback)": """
        SELECT coalesce(adapter_name, '(base)') AS adapter, cohort, fallback_reason, count(*) AS fallbacks
        FROM generations WHERE fallback GROUP BY ALL ORDER BY ALL""",
    "Schema retries per adapter and cohort": """
        SELECT coalesce(adapter_name, '(base)') AS adapter, cohort,
               count(*) FILTER (WHERE schema_attempts > 1) AS retries,
               count(*) FILTER (WHERE schema_valid = false) AS invalid
        FROM generations WHERE schema_attempts IS NOT NULL GROUP BY ALL ORDER BY ALL""",
    "Evaluation pass rate per adapter": """
        SELECT coalesce(adapter_name, '(base)') AS adapter, name AS evaluation, count(*) AS evaluated,
               round(avg(CASE WHEN passed THEN 1.0 ELSE 0.0 END), 2) AS pass_rate
        FROM evals GROUP BY ALL ORDER BY ALL""",
}


def _serve_with_transformers(models: TinyModels) -> None:
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(models.base)
    base = AutoModelForCausalLM.from_pretrained(models.base, dtype=torch.float32)
    model = PeftModel.from_pretrained(base, models.adapters["a1"], adapter_name="a1")
    model.load_adapter(models.adapters["a2"], adapter_name="a2")
    model.eval()

    def generate(prompts: list[str], max_new_tokens: int = 12) -> list[str]:
        encoded = tokenizer(prompts, return_tensors="pt", padding=True)
        with torch.no_grad():
            output = model.generate(**encoded, max_new_tokens=max_new_tokens, do_sample=False)
        return tokenizer.batch_decode(output[:, encoded["input_ids"].shape[1] :], skip_special_tokens=True)

    for cohort, prompts in PROMPTS.items():
        with loratrace.context(route="support", cohort=cohort, prompt_version="v3"):
            with model.disable_adapter():
                generate(prompts)
            for adapter in ("a1", "a2"):
                model.set_adapter(adapter)
                generate(prompts)
    # A structured-output route: a2 fails validation twice, then the request falls back to the base model.
    model.set_adapter("a2")
    with loratrace.context(route="extract", cohort="enterprise", prompt_version="v1"):
        for _ in range(2):
            answer = generate(["Return a JSON object with the fields name, plan and seats."])[0]
            error = _json_error(answer)
            loratrace.record_schema_attempt(valid=error is None, error=error)
            loratrace.record_eval("json_valid", score=0.0 if error else 1.0, passed=error is None)
        loratrace.mark_fallback(reason="schema_invalid")
        with model.disable_adapter():
            generate(["Return a JSON object with the fields name, plan and seats."])
        loratrace.record_schema_attempt(valid=True)
        loratrace.record_eval("json_valid", score=1.0, passed=True, explanation="validated by the base template")


def _json_error(text: str) -> str | None:
    try:
        json.loads(text)
    except ValueError as error:
        return f"{type(error).__name__}: {error}"
    return None


def _serve_with_vllm(models: TinyModels) -> None:
    from loratrace.demo.vllm_run import serve_offline

    prompts = [prompt for cohort_prompts in PROMPTS.values() for prompt in cohort_prompts]
    with loratrace.context(route="batch", cohort="offline"):
        serve_offline(models, prompts)


def _replay_step(models: TinyModels, workdir: Path) -> None:
    import polars as pl

    from loratrace.demo.replay_step import EXAMPLES, GATED_METRIC, gate_decisions, replay_and_compare

    click.echo(
        f"\n5/7 golden-set replay: {EXAMPLES} examples (golden answers from the approved base model) through base, a1 "
        "and a2, then drift paired on the same examples, and the release gate"
    )
    replay_store, rows = replay_and_compare(models, workdir)
    shown = rows.select("adapter", "cohort", "metric", "design", "base_value", "adapter_value", "p_value", "verdict")
    with pl.Config(tbl_rows=50, tbl_cols=10, tbl_width_chars=200, fmt_str_lengths=28, tbl_hide_dataframe_shape=True):
        click.echo(shown.sort("adapter", "metric", "cohort"))
    click.echo(f"  loratrace drift --store {replay_store} --metric {GATED_METRIC}")
    click.echo("\nThe release gate on the replay:")
    for adapter, decision, reasons in gate_decisions(replay_store, sorted(models.adapters)):
        click.echo(f"  {adapter}: {decision}")
        for reason in reasons:
            click.echo(f"    - {reason}")
    click.echo(f"  loratrace gate --store {replay_store} --adapter a1 --traffic replay --metric {GATED_METRIC}")


def _previous_spans(store: Path) -> int:
    """Spans an earlier run left in ``store`` (0 for a new store)."""
    from loratrace.errors import StoreError
    from loratrace.store import query

    try:
        return int(query(store, "SELECT count(*) AS n FROM spans")["n"][0])
    except StoreError:
        return 0


def _alert_check(store: Path, workdir: Path, *, metric: str) -> None:
    """One scheduled-style alert check over the store: the anytime-valid drift rule fires for the planted drop."""
    if importlib.util.find_spec("yaml") is None or importlib.util.find_spec("jsonschema") is None:
        click.echo("(alert checks need pip install 'loratrace[alerts]')")
        return
    from loratrace.alerts.check import run_alert_check

    rules = {
        "version": 1,
        "sinks": [{"type": "file", "path": str(workdir / "alerts.jsonl")}],
        "rules": [{"name": "quality-drift", "type": "drift", "metrics": [metric]}],
    }
    click.echo(f"\n$ loratrace alert check --store {store} --rules rules.yaml   # one drift rule, run on a schedule")
    result = run_alert_check(store, rules)
    for alert in result.firing:
        click.echo(f"  FIRING {alert['rule']} [{alert['severity']}]: {alert['summary']}")
        evidence = alert.get("query") or {}
        if evidence.get("command"):
            click.echo(f"    evidence: {evidence['command'].replace('STORE', str(store))}")
    if not result.firing:
        click.echo("  nothing firing")
    click.echo(f"  (notifications on changes only, written to {workdir / 'alerts.jsonl'}; exit code 1 while firing)\n")


def run_demo(workdir: str | os.PathLike[str], *, use_vllm: bool | None = None, fresh: bool = False) -> Path:
    """Run the walkthrough in ``workdir``; return the store folder.

    An earlier run's store is added to (and said so), or removed first with ``fresh``.
    """
    import shutil

    import polars as pl

    from loratrace.store import query

    workdir = Path(workdir)
    store = workdir / "store"
    if fresh and store.exists():
        shutil.rmtree(store)
        click.echo(f"starting fresh: removed the earlier runs' store {store}")
    if fresh and (workdir / "replay-store").exists():
        shutil.rmtree(workdir / "replay-store")
    previous = _previous_spans(store)
    if previous:
        click.echo(
            f"{store} already holds {previous} spans from earlier runs: this run adds to them "
            "(loratrace demo --fresh starts over)"
        )
    click.echo(f"1/7 building the tiny model and adapters a1, a2 in {workdir} (local, no download)")
    models = ensure_tiny_models(workdir / "models")
    loratrace.instrument(store=store, service_name="loratrace-demo")
    try:
        click.echo("2/7 serving through transformers + PEFT (base, a1, a2; cohorts enterprise and smb)")
        _serve_with_transformers(models)
        if use_vllm is None:
            use_vllm = importlib.util.find_spec("vllm") is not None
        if use_vllm:
            click.echo("3/7 serving one mixed batch (base, a1, a2) through vLLM's offline engine")
            _serve_with_vllm(models)
        else:
            click.echo("3/7 vLLM is not installed: skipping the vLLM part (pip install 'loratrace[vllm]')")
    finally:
        loratrace.uninstrument()  # flushes every span into the store
    click.echo(f"4/7 the spans in {store}:\n")
    with pl.Config(tbl_rows=100, tbl_cols=20, tbl_width_chars=200, fmt_str_lengths=24, tbl_hide_dataframe_shape=True):
        click.echo(query(store, SPAN_TABLE_SQL))
        for question, sql in QUESTIONS.items():
            click.echo(f"\n{question}")
            click.echo(query(store, sql))
    _replay_step(models, workdir)
    _simulate_and_analyse(workdir, store)
    click.echo(
        f'\nExplore further:\n  loratrace sql --store {store} "SELECT * FROM generations LIMIT 5"\n'
        f"  loratrace drift --store {store} --cohort enterprise\n"
        f"  loratrace spikes --store {store} --since 2d\n"
        f"  cd {store} && duckdb -readonly catalog.duckdb   # the duckdb shell: pip install duckdb-cli"
    )
    return store


def _simulate_and_analyse(workdir: Path, store: Path) -> None:
    import importlib.util

    import polars as pl

    from loratrace.analysis.run import drift_for_store
    from loratrace.analysis.spike_run import run_spikes
    from loratrace.cli.render import render_rows
    from loratrace.demo import planted
    from loratrace.demo.traffic import SERVICE_NAME, write_store

    traffic = planted.planted_traffic()
    click.echo(
        f"\n6/7 SIMULATED traffic (service {SERVICE_NAME}, route {planted.ROUTE}): {planted.HOURS} h of "
        f"{', '.join(planted.ADAPTERS)} and their base model on cohorts {', '.join(planted.COHORTS)}; planted: "
        f"{planted.REGRESSED_ADAPTER} loses {-planted.REGRESSION:.0%} of its evaluation pass rate on "
        f"{planted.REGRESSED_COHORT}, {planted.SPIKED_ADAPTER} falls back {planted.SPIKE:.0%} more for 4 hours"
    )
    written = write_store(traffic, store)
    click.echo(f"    {written:,} simulated generations written into {store}")
    click.echo(f"7/7 the analyses find what was planted:\n\n$ loratrace drift --store {store} --verdict regressed")
    rows = drift_for_store(store)
    regressed = rows.filter(pl.col("verdict") == "regressed")
    shown = ["adapter", "cohort", "metric", "design", "base_value", "adapter_value", "delta", "ci_low", "ci_high"]
    click.echo(render_rows(regressed.select(*shown, "q_value", "verdict"), "table"))
    click.echo(
        f"({regressed.height} of {rows.height} adapter x cohort x metric rows regressed: the planted drop of "
        f"{planted.REGRESSED_ADAPTER} on {planted.REGRESSED_COHORT}, which its mix-standardised (all) row carries, "
        f"and {planted.SPIKED_ADAPTER}'s fallback spike, which lifts its fallback rate over the day)\n"
    )
    click.echo(f"$ loratrace spikes --store {store}")
    spikes = run_spikes(store)
    columns = ["adapter", "metric", "start", "end", "windows", "baseline", "peak_rate", "peak_z"]
    click.echo(
        render_rows(spikes.episodes.with_columns(pl.col("adapter").fill_null("(base)")).select(columns), "table")
    )
    _alert_check(store, workdir, metric=f"eval_pass:{traffic.eval_name}")
    if importlib.util.find_spec("matplotlib") is None:
        click.echo("(the HTML report needs matplotlib: pip install 'loratrace[report]')")
        return
    from loratrace.report import collect_report_data, write_report

    page = write_report(collect_report_data(store), workdir / "report.html", title="loratrace demo report")
    click.echo(f"$ loratrace report --store {store} --html {page}\nwrote {page}: open it in a browser (works offline)")
