"""``loratrace report`` end to end: a real store of seeded traffic, the page rendered by real headless Chromium."""

from __future__ import annotations

import datetime as dt
import re
from pathlib import Path

import polars as pl
import pytest
from click.testing import CliRunner
from PIL import Image

from loratrace.cli import cli
from loratrace.demo.traffic import Effect, Traffic, write_store
from loratrace.report import Table, collect_report_data, write_report
from loratrace.report.figures import VERDICT_COLOURS
from loratrace.store import query
from tests.report.chromium import dump_dom, screenshot

START = dt.datetime(2026, 3, 2, tzinfo=dt.timezone.utc)
SPIKE_START = START + dt.timedelta(hours=30)


@pytest.fixture(scope="module")
def report_page(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("report")
    traffic = Traffic(
        start=START,
        duration=dt.timedelta(hours=48),
        requests_per_hour=60,
        effects=(
            Effect(adapter="a2", metric="eval_pass", delta=-0.15, cohort="smb"),
            Effect(
                adapter="a1",
                metric="fallback",
                delta=0.10,
                start=SPIKE_START,
                end=SPIKE_START + 4 * dt.timedelta(hours=1),
            ),
        ),
        swaps=(("a2", START + dt.timedelta(hours=20)),),
        seed=15,
    )
    write_store(traffic, folder / "store")
    page = folder / "report.html"
    result = CliRunner().invoke(cli, ["report", "--store", str(folder / "store"), "--html", str(page)])
    assert result.exit_code == 0, result.output
    assert f"wrote {page}" in result.output
    return page


def plots(dom: str) -> dict[str, str]:
    """Each plot's label and its markup, from the DOM."""
    return dict(re.findall(r'<figure class="plot" data-plot="([^"]+)">(.*?)</figure>', dom, flags=re.DOTALL))


def test_the_page_is_self_contained(report_page: Path) -> None:
    text = report_page.read_text("utf-8")
    references = re.findall(r'\b(?:src|href)\s*=\s*"([^"]*)"', text)
    assert references, "the page links its own sections"
    assert all(ref.startswith("#") for ref in references), [r for r in references if not r.startswith("#")]
    assert "<script" not in text
    assert "<link" not in text
    assert "@import" not in text
    assert {target[0] for target in re.findall(r"url\(([^)]*)\)", text)} <= {"#"}  # clip paths inside the SVG


def test_chromium_draws_every_plot_offline(report_page: Path, tmp_path: Path) -> None:
    drawn = plots(dump_dom(report_page, tmp_path / "profile"))
    # the drift forest, latency per adapter, one timeline for the planted spike (a1's fallbacks), the inventory
    assert set(drawn) == {"forest", "latency", "spikes:a1:fallback_rate", "inventory"}
    for label, markup in drawn.items():
        assert markup.lstrip().startswith("<svg"), label
        assert len(re.findall(r"<path\b", markup)) >= 10, label  # axes, ticks, bars or lines: a drawn plot
    assert len(re.findall(r"<path\b", drawn["latency"])) >= 9 + 3  # 3 arms × 3 percentiles, and the axes


def test_the_screenshot_shows_the_plots_in_colour(report_page: Path, tmp_path: Path) -> None:
    image = Image.open(screenshot(report_page, tmp_path / "profile", tmp_path / "page.png")).convert("RGB")
    colours = image.getcolors(maxcolors=image.width * image.height)
    assert colours is not None
    share = {rgb: count / (image.width * image.height) for count, rgb in colours}
    assert share.get((255, 255, 255), 0) < 0.97, "the page is blank"

    def present(hex_colour: str) -> float:
        target = tuple(int(hex_colour[i : i + 2], 16) for i in (1, 3, 5))
        return sum(s for rgb, s in share.items() if max(abs(a - b) for a, b in zip(rgb, target, strict=True)) < 12)

    assert present("#1b4f72") > 0.001  # the p99 bars
    assert present("#2e86c1") > 0.0005  # the p95 bars and the spike's rate line
    assert present(VERDICT_COLOURS["regressed"]) > 0.00002  # the flagged spike windows' red points


def test_the_forest_plot_shows_the_planted_regression_from_loratrace_drift(report_page: Path, tmp_path: Path) -> None:
    forest = plots(dump_dom(report_page, tmp_path / "profile"))["forest"]
    assert re.search(r"a2 \(\w{8}\) · smb", forest)  # two ids under one name: told apart
    assert VERDICT_COLOURS["regressed"] in forest
    text = report_page.read_text("utf-8")
    regressed = re.findall(r'<tr class="regressed">(.*?)</tr>', text)
    # a2 was swapped mid-run, so its smb regression (and its overall row, which smb drags down) shows under
    # each of its two ids; nothing else regressed
    cohorts = sorted(re.findall(r"<td>(smb|enterprise|\(all\))</td>", row)[0] for row in regressed)
    assert cohorts == ["(all)", "(all)", "smb", "smb"]
    assert all("<td>a2</td>" in row and "<td>eval_pass:quality</td>" in row for row in regressed)
    assert "loratrace drift --store" in text


def test_inventory_and_reproducing_commands_are_on_the_page(report_page: Path) -> None:
    text = report_page.read_text("utf-8")
    assert "Adapters whose weights changed under the same name: a2." in text
    inventory = plots(text)["inventory"]
    served = query(report_page.parent / "store", "SELECT DISTINCT adapter_id FROM generations").to_series()
    ids = [adapter_id.removeprefix("sha256:")[:8] for adapter_id in served.drop_nulls()]
    assert len(ids) == 3  # a1's, and a2's before and after the swap
    assert all(re.search(rf">\s*{prefix}<", inventory) for prefix in ids)
    assert text.count('<code class="command">') >= 4
    assert f"loratrace spikes --store {report_page.parent / 'store'} --window 1h --format json" in text


def test_a_forest_plot_labels_every_drift_row_and_colours_the_regression(report_page: Path, tmp_path: Path) -> None:
    rows = [
        {
            "adapter": adapter,
            "adapter_id": f"sha256:{adapter}",
            "cohort": cohort,
            "metric": "eval_pass:quality",
            "design": "concurrent",
            "base_value": 0.85,
            "adapter_value": 0.85 + delta,
            "delta": delta,
            "ci_low": delta - 0.02,
            "ci_high": delta + 0.02,
            "p_value": 0.001 if delta < -0.03 else 0.7,
            "q_value": 0.004 if delta < -0.03 else 0.8,
            "n_base": 2000,
            "n_adapter": 2000,
            "verdict": "regressed" if delta < -0.03 else "no_change",
            "flags": [],
        }
        for adapter, cohort, delta in [("a1", "smb", -0.06), ("a1", "enterprise", 0.004), ("a2", "smb", 0.001)]
    ]
    rows[2]["flags"] = ["confounded:prompt_version"]
    thin = {**rows[1], "adapter": "a3", "delta": 0.3, "ci_low": -0.5, "ci_high": 0.8, "verdict": "insufficient_data"}
    rows.append(thin)
    store = report_page.parent / "store"
    drift = Table(pl.DataFrame(rows), f"loratrace drift --store {store} --format json")
    page = write_report(collect_report_data(store, drift=drift), tmp_path / "drift.html")
    forest = plots(dump_dom(page, tmp_path / "profile"))["forest"]
    for adapter, cohort in [("a1", "smb"), ("a1", "enterprise"), ("a2", "smb")]:
        assert f"{adapter} · {cohort}" in forest
    assert "a2 · smb [confounded:prompt_version]" in forest
    assert "a3 · enterprise" not in forest  # too little data: in the table, not stretching the plot's scale
    assert "<td>a3</td>" in page.read_text("utf-8")
    assert VERDICT_COLOURS["regressed"] in forest
    assert 'class="regressed"' in page.read_text("utf-8")  # the table row is marked too


def test_a_missing_store_is_exit_code_2_naming_it(tmp_path: Path) -> None:
    missing = tmp_path / "nowhere"
    result = CliRunner().invoke(cli, ["report", "--store", str(missing), "--html", str(tmp_path / "page.html")])
    assert result.exit_code == 2, result.output
    assert f"{missing} is not a loratrace store" in result.output
    assert not (tmp_path / "page.html").exists()
