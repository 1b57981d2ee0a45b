"""Tokens and cost per adapter and per trace, from a prices file.

The prices file is TOML or JSON (by its extension)::

    unit = "1M"            # prices are per 1M tokens; or "1k"
    currency = "USD"       # a label for the output, optional

    [default]              # optional: any model not listed below
    input = 0.50
    output = 1.50

    [models."tiny-llama"]  # the base model (loratrace.base_model.name, else gen_ai.response.model)
    input = 0.20
    output = 0.60

    [adapters."billing-v7"]  # an adapter's own price (serving it costs more, e.g. a dedicated replica)
    input = 0.30
    output = 0.90

A generation is priced by its adapter when ``[adapters]`` lists it, else by its base model under ``[models]``,
else by ``[default]``. Every table holds ``input`` and ``output``, non-negative numbers, per ``unit`` tokens.
A generation that no entry prices is an error naming what to add: a cost silently left out would understate.
"""

from __future__ import annotations

import difflib
import json
import math
import os
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, Final, Literal

import polars as pl

if sys.version_info >= (3, 11):
    import tomllib
else:  # the standard library reads TOML from Python 3.11
    import tomli as tomllib

from loratrace._values import is_number, known_keys
from loratrace.analysis.store_filter import GENERATIONS_WHERE, generation_params
from loratrace.errors import ConfigurationError

Unit = Literal["1k", "1M"]
_TOKENS_PER_UNIT: Final[dict[str, int]] = {"1k": 1_000, "1M": 1_000_000}
_TOP_KEYS: Final = ("unit", "currency", "default", "models", "adapters")
_PRICE_KEYS: Final = ("input", "output")


@dataclass(frozen=True)
class Price:
    """Cost of ``unit`` input and output tokens."""

    input: float
    output: float


@dataclass(frozen=True)
class Prices:
    """A validated prices file."""

    unit: Unit
    currency: str = ""
    default: Price | None = None
    models: Mapping[str, Price] = field(default_factory=dict)
    adapters: Mapping[str, Price] = field(default_factory=dict)

    @property
    def tokens_per_unit(self) -> int:
        return _TOKENS_PER_UNIT[self.unit]


def _where(source: str, path: str) -> str:
    return f"{source}: {path}" if path else source


def _price(raw: Any, *, source: str, path: str) -> Price:
    where = _where(source, path).replace("{", "{{").replace("}", "}}")
    known_keys(
        raw,
        _PRICE_KEYS,
        error=ConfigurationError,
        not_a_table=where + " must be a table with input and output prices, got {value!r}",
        unknown_keys=where + " has unknown keys {unknown}; a price holds only input and output",
    )
    values = {}
    for key in _PRICE_KEYS:
        value = raw.get(key)
        if value is None:
            msg = f"{_where(source, path)} needs {key} (the price of {key} tokens per unit)"
            raise ConfigurationError(msg)
        if not is_number(value) or not math.isfinite(value) or value < 0:
            msg = f"{_where(source, path)}.{key} must be a non-negative number, got {value!r}"
            raise ConfigurationError(msg)
        values[key] = float(value)
    return Price(**values)


def parse_prices(raw: Mapping[str, Any], *, source: str = "prices") -> Prices:
    """Validate a prices mapping (the parsed file); errors name the file and the key."""
    unknown = sorted(set(raw) - set(_TOP_KEYS))
    if unknown:
        close = {k: difflib.get_close_matches(k, _TOP_KEYS, n=1) for k in unknown}
        hints = [f"{k} (did you mean {c[0]}?)" if c else k for k, c in close.items()]
        msg = f"{source} has unknown keys {', '.join(hints)}; it takes {', '.join(_TOP_KEYS)}"
        raise ConfigurationError(msg)
    unit = raw.get("unit")
    if unit not in _TOKENS_PER_UNIT:
        msg = f'{source}: unit must be "1k" or "1M" (the number of tokens a price is for), got {unit!r}'
        raise ConfigurationError(msg)
    currency = raw.get("currency", "")
    if not isinstance(currency, str):
        msg = f'{source}: currency must be a string such as "USD", got {currency!r}'
        raise ConfigurationError(msg)
    tables = {}
    for key in ("models", "adapters"):
        table = raw.get(key, {})
        if not isinstance(table, Mapping):
            msg = f"{source}: {key} must be a table of name -> {{input, output}}, got {table!r}"
            raise ConfigurationError(msg)
        tables[key] = {str(name): _price(value, source=source, path=f"{key}.{name}") for name, value in table.items()}
    default = _price(raw["default"], source=source, path="default") if "default" in raw else None
    if default is None and not tables["models"] and not tables["adapters"]:
        msg = f'{source} prices nothing: add [default], [models."NAME"] or [adapters."NAME"] with input and output'
        raise ConfigurationError(msg)
    return Prices(unit=unit, currency=currency, default=default, models=tables["models"], adapters=tables["adapters"])


def load_prices(path: str | os.PathLike[str]) -> Prices:
    """Read and validate a ``.toml`` or ``.json`` prices file."""
    file = Path(path)
    suffix = file.suffix.lower()
    if suffix not in (".toml", ".json"):
        msg = f"{file} is neither .toml nor .json; name the prices file by its format"
        raise ConfigurationError(msg)
    try:
        text = file.read_text(encoding="utf-8")
    except OSError as exc:
        msg = f"cannot read the prices file {file}: {exc.strerror or exc}"
        raise ConfigurationError(msg) from None
    try:
        raw = tomllib.loads(text) if suffix == ".toml" else json.loads(text)
    except (tomllib.TOMLDecodeError, json.JSONDecodeError) as exc:
        msg = f"{file} is not valid {suffix[1:].upper()}: {exc}"
        raise ConfigurationError(msg) from None
    if not isinstance(raw, Mapping):
        msg = f"{file} must hold a table (an object) of prices"
        raise ConfigurationError(msg)
    return parse_prices(raw, source=str(file))


def _model_column() -> pl.Expr:
    return pl.coalesce(pl.col("base_model_name"), pl.col("model"))


def priced(generations: pl.LazyFrame, prices: Prices) -> pl.LazyFrame:
    """Each generation (or token cell, see :func:`store_token_cells`) with ``priced_by`` and its ``cost``.

    ``priced_by`` is adapter / model / default / null. Tokens missing on a span count as 0. ``cost`` is null
    where nothing prices the generation. Cost is linear in the tokens, so summed cells price like their rows.
    """
    per = float(prices.tokens_per_unit)

    def table(mapping: Mapping[str, Price], attribute: str) -> pl.DataFrame:
        return pl.DataFrame(
            {
                "name": list(mapping),
                attribute + "_in": [p.input for p in mapping.values()],
                attribute + "_out": [p.output for p in mapping.values()],
            },
            schema={"name": pl.String, attribute + "_in": pl.Float64, attribute + "_out": pl.Float64},
        )

    frame = generations.with_columns(
        pl.col("input_tokens").fill_null(0),
        pl.col("output_tokens").fill_null(0),
        _model_column().alias("priced_model"),
    )
    if "generations" not in frame.collect_schema().names():  # a row per generation, not token cells
        frame = frame.with_columns(pl.lit(1, dtype=pl.Int64).alias("generations"))
    frame = frame.join(table(prices.adapters, "adapter").lazy(), left_on="adapter_name", right_on="name", how="left")
    frame = frame.join(table(prices.models, "model").lazy(), left_on="priced_model", right_on="name", how="left")
    default_in = prices.default.input if prices.default else None
    default_out = prices.default.output if prices.default else None
    has_adapter = pl.col("adapter_in").is_not_null()
    has_model = pl.col("model_in").is_not_null()
    has_default = pl.lit(prices.default is not None)
    price_in = pl.when(has_adapter).then("adapter_in").when(has_model).then("model_in").otherwise(pl.lit(default_in))
    price_out = (
        pl.when(has_adapter).then("adapter_out").when(has_model).then("model_out").otherwise(pl.lit(default_out))
    )
    source = (
        pl.when(has_adapter)
        .then(pl.lit("adapter"))
        .when(has_model)
        .then(pl.lit("model"))
        .when(has_default)
        .then(pl.lit("default"))
        .otherwise(pl.lit(None, dtype=pl.String))
    )
    cost = (pl.col("input_tokens") * price_in + pl.col("output_tokens") * price_out) / per
    return frame.with_columns(source.alias("priced_by"), cost.cast(pl.Float64).alias("cost")).drop(
        "adapter_in", "adapter_out", "model_in", "model_out"
    )


def unpriced(priced_generations: pl.LazyFrame) -> list[tuple[str | None, str | None]]:
    """The (adapter, base model) pairs that no price covers."""
    rows = (
        priced_generations.filter(pl.col("priced_by").is_null())
        .select("adapter_name", "priced_model")
        .unique()
        .sort("adapter_name", "priced_model", nulls_last=True)
        .collect()
    )
    return rows.rows()


def require_priced(priced_generations: pl.LazyFrame, *, source: str) -> None:
    """Raise naming what to add to the prices file when some generations have no price."""
    missing = unpriced(priced_generations)
    if missing:
        models = sorted({m for _, m in missing if m is not None})
        adapters = sorted({a for a, _ in missing if a is not None})
        wanted = [f'[models."{m}"]' for m in models] or ["[default]"]
        msg = (
            f"{source} has no price for base model(s) {', '.join(models) or '(unnamed)'}"
            f"{' (adapters ' + ', '.join(adapters) + ')' if adapters else ''}: add {' or '.join(wanted)}, "
            "or a [default] price"
        )
        raise ConfigurationError(msg)


def cost_by_adapter(priced_generations: pl.LazyFrame) -> pl.LazyFrame:
    """Per adapter name (the base model as ``(base) NAME``): generations, tokens, cost and cost per generation."""
    label = pl.coalesce(pl.col("adapter_name"), pl.lit("(base) ") + pl.col("priced_model").fill_null("?"))
    return (
        priced_generations.group_by(label.alias("adapter"))
        .agg(
            pl.col("generations").sum(),
            pl.col("input_tokens").sum().alias("input_tokens"),
            pl.col("output_tokens").sum().alias("output_tokens"),
            pl.col("cost").sum().alias("cost"),
            pl.col("priced_by").drop_nulls().unique().sort().str.join(",").alias("priced_by"),
        )
        .with_columns((pl.col("cost") / pl.col("generations")).alias("cost_per_generation"))
        .sort("cost", "adapter", descending=[True, False])
    )


_TOKEN_CELLS_SQL = f"""
SELECT adapter_name, base_model_name, model, count(*) AS generations,
       coalesce(sum(input_tokens), 0) AS input_tokens, coalesce(sum(output_tokens), 0) AS output_tokens
FROM spans
WHERE {GENERATIONS_WHERE}
GROUP BY ALL
"""


def store_token_cells(
    store: str | os.PathLike[str],
    *,
    since: datetime | None,
    until: datetime | None,
    adapter: str | None = None,
    cohort: str | None = None,
) -> pl.LazyFrame:
    """Generations and token sums per adapter and model of a store's window, computed by DuckDB in one pass."""
    from loratrace.store.readers import rows_to_frame
    from loratrace.store.rows import fetch_rows

    params = generation_params(since=since, until=until, adapter=adapter, cohort=cohort)
    names, rows = fetch_rows(store, _TOKEN_CELLS_SQL, params)
    frame = rows_to_frame(names, rows).with_columns(
        pl.col("generations", "input_tokens", "output_tokens").cast(pl.Int64),
        pl.col("adapter_name", "base_model_name", "model").cast(pl.String),
    )
    return frame.lazy()


def cost_by_trace(priced_generations: pl.LazyFrame, *, limit: int | None = None) -> pl.LazyFrame:
    """Per trace: its generations, adapters, tokens and cost, most expensive first (``limit`` rows)."""
    frame = (
        priced_generations.group_by("trace_id")
        .agg(
            pl.col("start_time").min().alias("started"),
            pl.len().alias("generations"),
            pl.col("adapter_name").drop_nulls().unique().sort().str.join(",").alias("adapters"),
            pl.col("input_tokens").sum().alias("input_tokens"),
            pl.col("output_tokens").sum().alias("output_tokens"),
            pl.col("cost").sum().alias("cost"),
        )
        .sort("cost", "trace_id", descending=[True, False])
    )
    return frame.head(limit) if limit is not None else frame
