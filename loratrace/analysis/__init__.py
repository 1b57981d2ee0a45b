"""Analyses over the span store: Polars, statistics on cells of sufficient statistics."""
