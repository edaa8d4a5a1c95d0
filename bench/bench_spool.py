"""The ban spool's cost on the healthy path (issue 16, "The database can go away").

Run: ``.venv/bin/python bench/bench_spool.py`` (or ``make bench``).

Every ban the agent decides is put into the kernel first, then appended to
the spool (one synced write per batch), then stored, then acknowledged (the
file emptied). This measures what the spool adds after the kernel: append
and acknowledge of one ban (the usual batch) and of a burst of 10,000 bans,
against the baseline measured in the same run on the same disk: the store
write of the same bans (``BanService.record`` on SQLite, what the agent did
before the spool). The kernel's ban latency does not include any of this.
"""

from __future__ import annotations

import ipaddress
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from pbxfw.agent.spool import BanSpool
from pbxfw.domain.bans import Ban
from pbxfw.storage.db import database_url
from pbxfw.storage.repository import Store
from pbxfw.usecases import ConfigService
from pbxfw.usecases.bans import BanService

ROUNDS = 200
BURST = 10_000


def make_bans(n: int, start: int = 0) -> list[Ban]:
    now = time.time()
    return [
        Ban(
            ipaddress.ip_network(f"10.{(i >> 16) & 255}.{(i >> 8) & 255}.{i & 255}/32"),
            "asterisk",
            frozenset({"sip", "iax"}),
            "5 asterisk failures within 600 s (offence 1: 86400 s)",
            now,
            now + 86400,
            now - 30,
            now,
            5,
            1,
        )
        for i in range(start, start + n)
    ]


def timed(action: Callable[[], object]) -> float:
    start = time.perf_counter()
    action()
    return time.perf_counter() - start


def main() -> None:
    folder = Path(
        tempfile.mkdtemp(prefix="pbxfw-bench-spool-", dir=sys.argv[1] if sys.argv[1:] else None)
    )
    try:
        store = Store.open(database_url(str(folder / "pbxfw.db")), create=True)
        ConfigService(store).init()
        bans = BanService(store)
        spool = BanSpool(folder / "state" / "ban-spool.jsonl")
        spool.load()

        def spool_one(ban: Ban) -> None:
            records = spool.append([ban])
            spool.acknowledge(r.id for r in records)

        singles = make_bans(2 * ROUNDS)
        spooled = [timed(lambda b=b: spool_one(b)) for b in singles[:ROUNDS]]  # type: ignore[misc]
        stored = [timed(lambda b=b: bans.record([b])) for b in singles[ROUNDS:]]  # type: ignore[misc]

        burst = make_bans(BURST, 1 << 20)
        appended: list[object] = []
        burst_append = timed(lambda: appended.extend(spool.append(burst)))
        burst_ack = timed(lambda: spool.acknowledge(r.id for r in appended))  # type: ignore[attr-defined]
        burst_store = timed(lambda: bans.record(make_bans(BURST, 2 << 20)))
        store.close()
    finally:
        shutil.rmtree(folder)

    def ms(values: list[float], q: float) -> float:
        return statistics.quantiles(values, n=100)[int(q) - 1] * 1000

    print("| figure | spool (append + acknowledge) | store write (baseline, same run) | ratio |")
    print("|---|---|---|---|")
    for q in (50, 99):
        a, b = ms(spooled, q), ms(stored, q)
        print(f"| one ban, p{q} of {ROUNDS} | {a:.2f} ms | {b:.2f} ms | {a / b:.2f}× |")
    total = burst_append + burst_ack
    print(
        f"| {BURST:,} bans at once | {total * 1000:.0f} ms "
        f"({burst_append * 1000:.0f} + {burst_ack * 1000:.0f}) | {burst_store * 1000:.0f} ms "
        f"| {total / burst_store:.2f}× |"
    )


if __name__ == "__main__":
    main()
