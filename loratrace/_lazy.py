"""Package attributes resolved on first use, so that importing a package does not import what its API needs.

``import loratrace`` must not load the OpenTelemetry SDK, ``loratrace query`` must not load Polars: a package's
``__init__`` names where each public name lives, and this makes its ``__getattr__`` and ``__dir__``.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping, Sequence
from typing import Any


def lazy_attributes(
    package: str, homes: Mapping[str, str], namespace: dict[str, Any], public: Sequence[str]
) -> tuple[Callable[[str], Any], Callable[[], list[str]]]:
    """``(__getattr__, __dir__)`` for ``package``: a name in ``homes`` is imported from its module on first use and
    kept in ``namespace`` (the package's ``globals()``); ``dir()`` lists ``public`` and the submodules loaded."""
    prefix = f"{package}."

    def __getattr__(name: str) -> Any:
        home = homes.get(name)
        if home is None:
            msg = f"module {package!r} has no attribute {name!r}"
            raise AttributeError(msg)
        value = getattr(importlib.import_module(home), name)
        namespace[name] = value
        return value

    def __dir__() -> list[str]:
        # the API and the submodules loaded so far, not the package's own helpers
        loaded = [name for name, value in namespace.items() if getattr(value, "__name__", "").startswith(prefix)]
        return sorted({*public, *loaded})

    return __getattr__, __dir__
