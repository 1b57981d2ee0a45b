"""The real collector fixture of the collector tests, for the outcome and hygiene tests."""

from collector.conftest import collector, start_collector

__all__ = ["collector", "start_collector"]
