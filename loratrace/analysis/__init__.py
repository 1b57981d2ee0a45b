"""Analyses of the store: incident queries, inventory, latency and cost (Polars; statistics via scipy)."""
