"""Light simulated nodes for the fleet benchmarks (issue 16): the agent's protocol, no kernel.

``python bench/fleet_sim.py URL COUNT STATUS`` runs COUNT simulated nodes
(``sim00``…) in threads of one process until SIGTERM, then prints one JSON
object (reads, rows read, this process's CPU) and exits. Each node speaks
what a real agent speaks to PostgreSQL:

- one listening connection on the channel ``pbxfw`` (the agent's own
  ``Listener``, application name ``pbxfw-listen``);
- on a ``bans_revision`` notification (and once at start) one
  ``REPEATABLE READ`` transaction on its own connection that reads the ban
  revisions and, when they moved, the bans as the agent's
  ``BanService.changed_since`` does: every active ban, or (where the bans
  table records the revision that wrote each row) only those written since
  the revision it read last, unless one was removed since; with the columns
  and the order of ``Repository.bans``: the same statements, so PostgreSQL
  does the same work. The rows are fetched and dropped (no ``Ban`` objects,
  no kernel): that is what makes it light;
- a node report every 5 s through ``NodeService.report`` (the agent's write).

Every 0.1 s STATUS gets ``{"sim00": revision read, ...}`` (written whole,
then renamed), so the benchmark knows when every simulated node has read
the newest revision.
"""

from __future__ import annotations

import json
import os
import select
import signal
import sys
import threading
import time
from pathlib import Path
from typing import Any

import psycopg
from sqlalchemy import select as sql_select
from sqlalchemy.dialects import postgresql

import pbxfw
from pbxfw.domain.nodes import REPORT_SECONDS, Node
from pbxfw.storage.bans import _BAN_COLUMNS, cast_table
from pbxfw.storage.models import BanRow
from pbxfw.storage.notify import Listener
from pbxfw.storage.repository import Store
from pbxfw.usecases.nodes import NodeService

__all__ = ["ban_query", "main"]


def ban_query(since: bool = False) -> str:
    """The agent's read of the active bans (storage.bans ``BanRows.bans``), as SQL
    with a ``%(now)s`` parameter; with ``since`` (incremental reads: the bans
    table has a ``revision`` column) only the rows written after ``%(since)s``."""
    table = cast_table(BanRow.__table__)
    stmt = sql_select(*(table.c[name] for name in _BAN_COLUMNS)).order_by(table.c.id)
    stmt = stmt.where(table.c.expires_at > 0.5)
    if since:
        stmt = stmt.where(table.c.revision > -1)
    sql = str(stmt.compile(dialect=postgresql.dialect(paramstyle="pyformat")))  # type: ignore[no-untyped-call]
    return sql.replace("%(expires_at_1)s", "%(now)s").replace("%(revision_1)s", "%(since)s")


#: The bans table records the revision that wrote each row: the agent reads
#: only what was written since its revision, unless a ban was removed since
#: (usecases.bans ``BanService.changed_since``); else it reads every active ban.
INCREMENTAL = "revision" in cast_table(BanRow.__table__).c
#: The two reads the agent makes: every active ban, those written since a revision.
FULL, SINCE = ban_query(), ban_query(since=True) if INCREMENTAL else ""
REVISIONS = "SELECT key, value FROM meta WHERE key IN ('bans_revision', 'bans_removed_revision')"


class SimNode(threading.Thread):
    def __init__(self, name: str, store: Store, stop: threading.Event) -> None:
        super().__init__(name=name, daemon=True)
        self.node = name
        self.store = store
        self.stop = stop
        self.nodes = NodeService(store)
        self.revision = -1
        self.reads = 0
        self.rows = 0
        self.rows_now = 0
        self.error = ""

    def read(self, conn: psycopg.Connection[Any]) -> None:
        """One tick's read of the bans, as the agent's ``changed_since``."""
        with conn.transaction():
            meta = dict(conn.execute(REVISIONS).fetchall())
            current = int(meta.get("bans_revision") or 0)
            removed = int(meta.get("bans_removed_revision") or 0)
            if current == self.revision:
                return
            full = not INCREMENTAL or self.revision < 0 or removed > self.revision
            full = full or current < self.revision
            sql = FULL if full else SINCE
            params = {"now": time.time(), "since": self.revision}
            rows = conn.execute(sql, params).fetchall()  # type: ignore[arg-type]
        self.rows_now = len(rows) if full else self.rows_now + len(rows)
        self.revision = current
        self.reads += 1
        self.rows += len(rows)

    def report(self, started: float) -> None:
        now = time.time()
        self.nodes.report(
            Node(
                name=self.node,
                site="default",
                registered_at=now,
                started_at=started,
                last_seen=now,
                applied_revision=None,
                kernel_bans=self.rows_now,
                version=pbxfw.__version__,
                log_lag_bytes=0,
                last_error="",
            )
        )

    def run(self) -> None:
        try:
            self._run()
        except Exception as exc:  # reported in the summary, never silent
            self.error = f"{type(exc).__name__}: {exc}"

    def _run(self) -> None:
        args, kwargs = self.store.engine.dialect.create_connect_args(self.store.engine.url)
        kwargs["application_name"] = f"pbxfw-{self.node}"
        listener = Listener(self.store.engine)
        with psycopg.connect(*args, **kwargs) as conn:
            conn.isolation_level = psycopg.IsolationLevel.REPEATABLE_READ
            started = time.time()
            due, next_report = True, 0.0
            while not self.stop.is_set():
                if due:
                    self.read(conn)
                    due = False
                if time.time() >= next_report:
                    self.report(started)
                    next_report = time.time() + REPORT_SECONDS
                wait = max(0.0, min(0.2, next_report - time.time()))
                ready, _, _ = select.select([listener.fileno()], [], [], wait)
                if ready:
                    due = any(p.startswith("bans_revision:") for p in listener.received())
        listener.close()


def write_status(path: Path, nodes: list[SimNode]) -> None:
    temporary = path.with_suffix(".tmp")
    temporary.write_text(json.dumps({n.node: n.revision for n in nodes}))
    temporary.rename(path)


def main() -> None:
    url, count, status = sys.argv[1], int(sys.argv[2]), Path(sys.argv[3])
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    store = Store.open(url)
    nodes = [SimNode(f"sim{i:02d}", store, stop) for i in range(count)]
    for node in nodes:
        node.start()
    while not stop.is_set():
        write_status(status, nodes)
        stop.wait(0.1)
    for node in nodes:
        node.join(10)
    write_status(status, nodes)
    store.close()
    cpu = os.times()
    print(
        json.dumps(
            {
                "nodes": count,
                "reads": sum(n.reads for n in nodes),
                "rows": sum(n.rows for n in nodes),
                "cpu_s": cpu.user + cpu.system,
                "errors": [f"{n.node}: {n.error}" for n in nodes if n.error],
            }
        )
    )


if __name__ == "__main__":
    main()
