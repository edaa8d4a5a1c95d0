"""nft itself accepts each golden ruleset of tests/compiler/golden (in a throwaway namespace)."""

from __future__ import annotations

from pathlib import Path

import pytest

from .lab import Lab, require_kernel

GOLDEN = Path(__file__).parents[1] / "compiler" / "golden"


@pytest.mark.kernel
def test_every_golden_file_loads_in_the_kernel() -> None:
    require_kernel()
    paths = sorted(GOLDEN.glob("*.nft"))
    assert paths, f"no golden files in {GOLDEN}"
    with Lab("golden") as lab:
        ns = lab.namespace("chk")
        for path in paths:
            lab.nft(ns, "-f", "-", input=path.read_text())
            lab.nft(ns, "delete", "table", "inet", "pbxfw")
