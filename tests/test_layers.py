"""Every adapter (agent, REST, web page, CLI) calls use cases: nothing outside
``pbxfw.usecases`` and ``pbxfw.storage`` opens a unit of work on the store (issue 14)."""

from __future__ import annotations

import ast
from pathlib import Path

SRC = Path(__file__).parent.parent / "src" / "pbxfw"
ALLOWED = ("usecases", "storage")


def _store_units(path: Path) -> list[int]:
    """Lines where ``….store.read()`` / ``store.write()`` (any store-named object) is called."""
    lines = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)):
            continue
        if node.func.attr not in ("read", "write"):
            continue
        owner = node.func.value
        name = owner.id if isinstance(owner, ast.Name) else getattr(owner, "attr", "")
        if "store" in name.lower():
            lines.append(node.lineno)
    return lines


def test_only_use_cases_and_storage_open_the_store() -> None:
    found = {
        f"{path.relative_to(SRC)}:{line}"
        for path in SRC.rglob("*.py")
        if path.relative_to(SRC).parts[0] not in ALLOWED
        for line in _store_units(path)
    }
    assert found == set()


def test_the_check_sees_a_store_unit_of_work(tmp_path: Path) -> None:
    sample = tmp_path / "sample.py"
    sample.write_text("with self.store.read() as repo:\n    pass\nwith store.write():\n    pass\n")
    assert _store_units(sample) == [1, 3]
