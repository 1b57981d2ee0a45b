"""The ``flags`` column of drift rows: one expression that appends a flag where a condition holds."""

from __future__ import annotations

import polars as pl


def add_flag(condition: pl.Expr, flag: str) -> pl.Expr:
    """The ``flags`` column with ``flag`` appended on the rows where ``condition`` holds (as ``flags``)."""
    return (
        pl.when(condition).then(pl.col("flags").list.concat(pl.lit([flag]))).otherwise(pl.col("flags")).alias("flags")
    )
