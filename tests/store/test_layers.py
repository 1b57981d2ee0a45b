"""The store is the lower layer: the collector writes into it, the CLI renders it, it imports neither."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import loratrace.store

STORE = Path(loratrace.store.__file__).parent
ABOVE_THE_STORE = ("loratrace.collector", "loratrace.cli")


def _imports(path: Path) -> list[str]:
    """Every module ``path`` imports, at any depth (imports inside functions count too)."""
    names = []
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            names += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module:
            names += [node.module, *(f"{node.module}.{alias.name}" for alias in node.names)]
    return names


@pytest.mark.parametrize("path", sorted(STORE.rglob("*.py")), ids=lambda p: p.name)
def test_the_store_imports_nothing_above_it(path: Path) -> None:
    above = [name for name in _imports(path) if name.startswith(ABOVE_THE_STORE)]
    assert above == [], f"{path.name} imports {above}: move what it needs into loratrace/store/ or below"


def test_the_check_sees_an_import_inside_a_function(tmp_path: Path) -> None:
    module = tmp_path / "m.py"
    module.write_text("def f():\n    from loratrace.collector.decode import RowBuffer\n")
    assert "loratrace.collector.decode.RowBuffer" in _imports(module)
