"""Helpers more than one test folder (or a benchmark) uses, imported as ``tests.support.<module>``.

pytest puts the repository root on ``sys.path`` (``pythonpath = ["."]`` in pyproject.toml), so these import the
same way from every folder; the benchmarks reach them through ``bench/_common.py``.
"""
