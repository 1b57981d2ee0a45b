"""The analyses' docstring examples run as doctests (numpydoc ``Examples`` sections)."""

from __future__ import annotations

import doctest
import importlib
import pkgutil

import pytest

import loratrace.analysis

MODULES = sorted(m.name for m in pkgutil.iter_modules(loratrace.analysis.__path__, "loratrace.analysis."))


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples(name: str) -> None:
    module = importlib.import_module(name)
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    assert result.failed == 0, f"{result.failed} doctest(s) failed in {name}"
