"""The store on SQLite and on PostgreSQL (issue 16): 100,000 bans in and out.

Run: ``.venv/bin/python bench/bench_store.py`` (or ``make bench``); needs
Debian's ``postgresql`` package (a throw-away server is started as the tests
do, tests/pgserver.py). Baselines in the same run: the same operations on
SQLite, and on PostgreSQL the plain executemany upsert the one-statement
``unnest`` replaces.
"""

from __future__ import annotations

import ipaddress
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.pgserver import PgServer

from pbxfw.domain.bans import Ban
from pbxfw.storage import bans as storage_bans
from pbxfw.storage.models import BanRow
from pbxfw.storage.repository import Store
from pbxfw.usecases import ConfigService

N = 100_000


def subnets() -> list[str]:
    return [str(ipaddress.ip_network((0x0A000000 + i, 32))) for i in range(N)]


def like() -> Ban:
    now = time.time()
    return Ban(
        ipaddress.ip_network("192.0.2.1/32"), "manual", frozenset(), "import", now, now + 3600
    )


def measure(url: str, executemany: bool = False) -> tuple[float, float]:
    """Seconds to upsert N bans in one write, and the best of 3 reads of them all."""
    store = Store.open(url, create=True)
    ConfigService(store).init()
    try:
        started = time.perf_counter()
        with store.write() as repo:
            if executemany:
                table = storage_bans.cast_table(BanRow.__table__)
                values: dict[str, Any] = storage_bans._shared_dict(like())
                from sqlalchemy.dialects.postgresql import insert

                stmt = insert(table)
                stmt = stmt.on_conflict_do_update(
                    index_elements=[table.c.subnet, table.c.jail],
                    set_={c: stmt.excluded[c] for c in storage_bans._SHARED_COLUMNS[1:]},
                )
                repo.session.execute(stmt, [{"subnet": s, **values} for s in subnets()])
            else:
                repo.save_bans_like(subnets(), like())
        upsert = time.perf_counter() - started
        reads = []
        for _ in range(3):
            started = time.perf_counter()
            with store.read() as repo:
                assert len(repo.bans()) == N
            reads.append(time.perf_counter() - started)
        return upsert, min(reads)
    finally:
        store.close()


def main() -> None:
    server = PgServer()
    try:
        server.create_template()
        with tempfile.TemporaryDirectory() as folder:
            sqlite = measure(f"sqlite:///{folder}/bench.db")
        postgresql = measure(server.url(server.create_database()))
        baseline = measure(server.url(server.create_database()), executemany=True)
    finally:
        server.stop()
    print(f"| operation, {N:,} bans | SQLite | PostgreSQL | PostgreSQL ÷ SQLite |")
    print("|---|---|---|---|")
    print(
        f"| upsert (`bans import`'s write) | {sqlite[0]:.2f} s | {postgresql[0]:.2f} s "
        f"(executemany baseline {baseline[0]:.2f} s: {baseline[0] / postgresql[0]:.1f}× slower) "
        f"| {postgresql[0] / sqlite[0]:.1f} |"
    )
    print(
        f"| read every ban (`Repository.bans`) | {sqlite[1]:.2f} s | {postgresql[1]:.2f} s "
        f"| {postgresql[1] / sqlite[1]:.1f} |"
    )


if __name__ == "__main__":
    main()
