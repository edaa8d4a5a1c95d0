"""Migration 0005 (the ``nodes`` table) upgrades a 0004 database, and goes back down.

A real SQLite file is brought to 0004 with Alembic and given a journal
cursor as that version stored it, then upgraded as ``pbxfw init`` does: the
cursor is kept, the nodes table is there (empty), a node's report is stored
and read back through the use case, and the schema is what models.py says.
"""

from __future__ import annotations

from pathlib import Path

import sqlalchemy as sa
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from pbxfw.domain.nodes import Node
from pbxfw.storage.models import Base
from pbxfw.storage.repository import Store
from pbxfw.usecases.ips_state import journal_cursors
from pbxfw.usecases.nodes import NodeService
from tests.storage.migration_steps import database_at, downgraded, head, revisions, stored_version

CURSOR = "s=69820a28b0b14e21b8f06c5913559500;i=3;b=0123456789abcdef0123456789abcdef;m=1;t=2;x=3"


def test_0005_upgrades_a_0004_database_and_stores_nodes(tmp_path: Path) -> None:
    def fill(connection: sa.Connection) -> None:
        connection.execute(
            sa.text(
                'INSERT INTO log_offsets (path, inode, "offset", updated_at, journal_cursor) '
                f"VALUES ('journal:ssh.service', 0, 0, 1.0, '{CURSOR}')"
            )
        )
        assert "nodes" not in sa.inspect(connection).get_table_names()

    url = database_at(tmp_path, "0004", fill)
    store = Store.open(url, create=True)  # what `pbxfw init` does
    try:
        with store.engine.connect() as connection:
            # Upgraded to the newest revision, through 0005.
            assert stored_version(connection) == head()
            assert "0005" in revisions()
            context = MigrationContext.configure(connection, opts={"compare_type": True})
            assert compare_metadata(context, Base.metadata) == []
        assert journal_cursors(store) == {"journal:ssh.service": CURSOR}
        with store.write() as repo:
            repo.set_meta("revision", "1")  # what `pbxfw init` stores
        nodes = NodeService(store, clock=lambda: 1000.0)
        assert nodes.listing().nodes == []
        big = 2**40  # 64-bit counters (PostgreSQL: BIGINT)
        report = Node("pbx-1", "default", 990.0, 990.0, 999.0, 2**33, big, "0.1.0", big, "")
        assert nodes.report(report) is True
        [stored] = nodes.listing().nodes
        assert stored == report
        listing = nodes.listing()
        assert listing.stored_revision == 1
        assert listing.as_json()[0]["state"] == "drifted"  # revision 2**33 is not 1
    finally:
        store.close()


def test_0005_downgrades_to_0004(tmp_path: Path) -> None:
    with downgraded(tmp_path, "0004") as (connection, config):
        assert "nodes" not in sa.inspect(connection).get_table_names()
        command.upgrade(config, "head")
        connection.commit()
        assert "nodes" in sa.inspect(connection).get_table_names()
