"""Analyses: adapter against base per cohort, in two stages (cells of sufficient statistics, then statistics);
incident queries, inventory, latency and cost.

\b
    from loratrace.analysis import drift_for_store
    rows = drift_for_store("./traces", since=parse_time("24h"))
"""

from __future__ import annotations

import sys
import types
from typing import TYPE_CHECKING, Any

from loratrace._lazy import lazy_attributes

if TYPE_CHECKING:
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

# Resolved on first use: `loratrace query` imports loratrace.analysis.queries, which must not pay for Polars.
_HOMES = {
    "BUILTIN": "loratrace.analysis.metrics",
    "DRIFT_COLUMNS": "loratrace.analysis.drift",
    "EmptySelectionError": "loratrace.analysis.run",
    "Metric": "loratrace.analysis.metrics",
    "cells": "loratrace.analysis.cells",
    "drift": "loratrace.analysis.drift",
    "drift_for_store": "loratrace.analysis.run",
    "evals": "loratrace.analysis.load",
    "generations": "loratrace.analysis.load",
    "load_evals": "loratrace.analysis.load",
    "load_generations": "loratrace.analysis.load",
    "paired_cells": "loratrace.analysis.cells",
    "parse_duration": "loratrace.analysis.timespec",
    "parse_time": "loratrace.analysis.timespec",
    "resolve": "loratrace.analysis.metrics",
}


__getattr__, __dir__ = lazy_attributes(__name__, _HOMES, globals(), __all__)


class _AnalysisPackage(types.ModuleType):
    """Keeps ``cells`` and ``drift`` the functions once their submodules are imported, as eager imports did.

    Importing ``loratrace.analysis.cells`` binds the package attribute ``cells`` to the submodule; the API names
    the function that module defines.
    """

    def __setattr__(self, name: str, value: Any) -> None:
        if name in _FUNCTIONS_NAMED_AS_MODULES and isinstance(value, types.ModuleType):
            value = getattr(value, name)
        super().__setattr__(name, value)


_FUNCTIONS_NAMED_AS_MODULES = frozenset({"cells", "drift"})
sys.modules[__name__].__class__ = _AnalysisPackage
