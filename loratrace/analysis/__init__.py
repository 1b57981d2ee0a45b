"""Analyses: adapter against base per cohort, in two stages (cells of sufficient statistics, then statistics).

\b
    from loratrace.analysis import drift_for_store
    rows = drift_for_store("./traces", since=parse_time("24h"))
"""

from loratrace.analysis.cells import cells, paired_cells
from loratrace.analysis.drift import DRIFT_COLUMNS, drift
from loratrace.analysis.load import evals, generations, load_evals, load_generations
from loratrace.analysis.metrics import BUILTIN, Metric, resolve
from loratrace.analysis.run import EmptySelectionError, drift_for_store
from loratrace.analysis.timespec import parse_duration, parse_time

__all__ = [
    "BUILTIN",
    "DRIFT_COLUMNS",
    "EmptySelectionError",
    "Metric",
    "cells",
    "drift",
    "drift_for_store",
    "evals",
    "generations",
    "load_evals",
    "load_generations",
    "paired_cells",
    "parse_duration",
    "parse_time",
    "resolve",
]
