"""``loratrace report``: one self-contained HTML page with the analyses' plots and the tables behind them.

Needs the ``report`` extra (matplotlib): ``pip install 'loratrace[report]'``.
"""

from __future__ import annotations

import os
from pathlib import Path

from loratrace.report.data import ReportData, Table, collect_report_data
from loratrace.report.page import render_page

__all__ = ["ReportData", "Table", "collect_report_data", "render_page", "write_report"]


def write_report(data: ReportData, html_file: str | os.PathLike[str], *, title: str = "loratrace report") -> Path:
    """Render ``data`` and write it to ``html_file`` atomically; returns the file's path."""
    target = Path(html_file)
    tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    tmp.write_text(render_page(data, title=title), encoding="utf-8")
    os.replace(tmp, target)
    return target
