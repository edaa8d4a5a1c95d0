"""What recording the history (issue 19) adds to an edit of the configuration.

Run: ``.venv/bin/python bench/bench_history.py [NETWORKS ...]`` (default 100
and 10,000 networks, SQLite). For each size, the median of 7 edits of one
network (``update_network``) and of one setting (``update_settings``), with
the history recorded and, as the baseline in the same run, with the
recording switched off (``record_change`` and ``baseline_of`` replaced by
no-ops: what an edit cost before issue 19); the figures are printed as
milliseconds and as the ratio history/baseline.
"""

from __future__ import annotations

import sys
import tempfile
import time
from collections.abc import Callable
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from pbxfw.storage.repository import Store
from pbxfw.usecases import ConfigService, NetworkChange
from pbxfw.usecases import history as usecases_history


def _store(networks: int, folder: Path) -> ConfigService:
    store = Store.open(f"sqlite:///{folder / 'bench.db'}", create=True)
    svc = ConfigService(store)
    svc.init()
    document = svc.export_document()
    document["networks"] += [
        {"name": f"N{i}", "subnet": f"10.{i // 256}.{i % 256}.0/24", "services": {"ssh": "allow"}}
        for i in range(networks)
    ]
    svc.import_document(document)
    return svc


def _median_ms(edit: Callable[[int], object]) -> float:
    edit(1)  # warm-up: caches, the first query plans
    edit(0)
    times = []
    for k in range(7):
        start = time.perf_counter()
        edit(k)
        times.append(time.perf_counter() - start)
    return sorted(times)[3] * 1000


@contextmanager
def _recording(on: bool) -> Any:
    if on:
        yield
        return
    record, baseline = usecases_history.record_change, usecases_history.baseline_of
    usecases_history.record_change = lambda *a, **k: None  # type: ignore[assignment]
    usecases_history.baseline_of = lambda repo: None  # type: ignore[assignment]
    try:
        yield
    finally:
        usecases_history.record_change, usecases_history.baseline_of = record, baseline


def _edits(svc: ConfigService) -> dict[str, float]:
    def network(k: int) -> object:
        change = NetworkChange(allow=["ssh"]) if k % 2 else NetworkChange(block=["ssh"])
        return svc.update_network("N1", change)

    def setting(k: int) -> object:
        return svc.update_settings({"ips_maxretry": 3 + k % 5})

    return {"network": _median_ms(network), "setting": _median_ms(setting)}


def measure(networks: int) -> dict[str, dict[str, float]]:
    """``{"baseline"|"history": {"network"|"setting": ms}}`` for ``networks``."""
    figures: dict[str, dict[str, float]] = {}
    for on in (False, True):
        with tempfile.TemporaryDirectory() as folder, _recording(on):
            svc = _store(networks, Path(folder))
            try:
                figures["history" if on else "baseline"] = _edits(svc)
            finally:
                svc.store.close()
    return figures


def main() -> None:
    sizes = [int(a) for a in sys.argv[1:]] or [100, 10_000]
    print("| networks | edit | baseline (no history) | with history | ratio |")
    print("|---:|---|---:|---:|---:|")
    for size in sizes:
        f = measure(size)
        for edit in ("network", "setting"):
            base, ours = f["baseline"][edit], f["history"][edit]
            what = "update_network" if edit == "network" else "update_settings"
            print(f"| {size:,} | {what} | {base:.1f} ms | {ours:.1f} ms | {ours / base:.1f}× |")


if __name__ == "__main__":
    main()
