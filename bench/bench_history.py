"""What recording the history (issue 19) adds to an edit of the configuration.

Run: ``.venv/bin/python bench/bench_history.py [NETWORKS ...]`` (default 100
and 10,000 networks, SQLite). For each size, two databases with the same
configuration: one with the history recorded, and, as the baseline, one with
the recording switched off (``record_change`` and ``baseline_of`` replaced by
no-ops, so no network write is tracked either: what an edit cost before
issue 19). The median of 15 edits of one network (``update_network``) and of
one setting (``update_settings``) on each, the two taking turns edit by edit
so that a change of the machine's load falls on both; printed as
milliseconds and as the ratio history/baseline; then what reading the newest
revision back with its diff (``history show``) takes.
"""

from __future__ import annotations

import sys
import tempfile
import time
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


#: Edits measured per kind and database (after two to warm up).
EDITS = 15


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


def _edit(svc: ConfigService, kind: str, k: int) -> None:
    if kind == "network":
        change = NetworkChange(allow=["ssh"]) if k % 2 else NetworkChange(block=["ssh"])
        svc.update_network("N1", change)
    else:
        svc.update_settings({"ips_maxretry": 3 + k % 5})


def _timed(svc: ConfigService, kind: str, k: int, on: bool) -> float:
    with _recording(on):
        start = time.perf_counter()
        _edit(svc, kind, k)
        return time.perf_counter() - start


def measure(networks: int) -> dict[str, dict[str, float]]:
    """``{"baseline"|"history": {"network"|"setting": ms}}`` for ``networks``;
    ``history`` also ``show``: reading the newest revision with its diff."""
    with tempfile.TemporaryDirectory() as one, tempfile.TemporaryDirectory() as two:
        stores = {"baseline": _store(networks, Path(one)), "history": _store(networks, Path(two))}
        try:
            times: dict[str, dict[str, list[float]]] = {"baseline": {}, "history": {}}
            for kind in ("network", "setting"):
                for k in range(-2, EDITS):  # the first two warm up: caches, query plans
                    for name, svc in stores.items():
                        spent = _timed(svc, kind, k, name == "history")
                        if k >= 0:
                            times[name].setdefault(kind, []).append(spent)
            # Reading a revision back (`history show`): the newest, a delta.
            history = stores["history"]
            rev = history.history(1)[0].rev
            for _ in range(7):
                # As a first read in a process (the CLI's): no settings validated before.
                # (The tree before the deltas has no such memo; the bench runs on it too.)
                memo = getattr(sys.modules.get("pbxfw.storage.history_format"), "_validated", None)
                if memo is not None:
                    memo.cache_clear()
                start = time.perf_counter()
                history.history_entry(rev)
                times["history"].setdefault("show", []).append(time.perf_counter() - start)
            return {
                name: {kind: sorted(t)[len(t) // 2] * 1000 for kind, t in by_kind.items()}
                for name, by_kind in times.items()
            }
        finally:
            for svc in stores.values():
                svc.store.close()


def main() -> None:
    sizes = [int(a) for a in sys.argv[1:]] or [100, 10_000]
    print("| networks | edit | baseline (no history) | with history | ratio |")
    print("|---:|---|---:|---:|---:|")
    shows = []
    for size in sizes:
        f = measure(size)
        for edit in ("network", "setting"):
            base, ours = f["baseline"][edit], f["history"][edit]
            what = "update_network" if edit == "network" else "update_settings"
            print(f"| {size:,} | {what} | {base:.1f} ms | {ours:.1f} ms | {ours / base:.2f}× |")
        shows.append(f"{size:,} networks: {f['history']['show']:.1f} ms")
    print(f"\nhistory show of the newest revision (median of 7): {'; '.join(shows)}")


if __name__ == "__main__":
    main()
