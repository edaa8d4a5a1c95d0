"""Migration 0006 (the ``sites`` table) upgrades a 0005 database, and goes back down.

A real SQLite file is brought to 0005 with Alembic and given a node as that
version stored it, then upgraded as ``pbxfw init`` does: the node is kept,
the ``sites`` table holds the one site ``default``, and the schema is what
models.py says.
"""

from __future__ import annotations

from pathlib import Path

import sqlalchemy as sa
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from pbxfw.storage.models import Base
from pbxfw.storage.repository import Store
from tests.storage.migration_steps import database_at, downgraded, head, revisions, stored_version


def test_0006_upgrades_a_0005_database_with_the_default_site(tmp_path: Path) -> None:
    def fill(connection: sa.Connection) -> None:
        connection.execute(
            sa.text(
                "INSERT INTO nodes (name, site, registered_at, started_at, last_seen) "
                "VALUES ('pbx-1', 'default', 1.0, 1.0, 2.0)"
            )
        )
        assert "sites" not in sa.inspect(connection).get_table_names()

    url = database_at(tmp_path, "0005", fill)
    store = Store.open(url, create=True)  # what `pbxfw init` does
    try:
        with store.engine.connect() as connection:
            assert stored_version(connection) == head()
            assert "0006" in revisions()
            context = MigrationContext.configure(connection, opts={"compare_type": True})
            assert compare_metadata(context, Base.metadata) == []
            names = connection.execute(sa.text("SELECT name FROM sites")).scalars().all()
            assert names == ["default"]
            nodes = connection.execute(sa.text("SELECT name, site FROM nodes")).all()
            assert [tuple(n) for n in nodes] == [("pbx-1", "default")]
    finally:
        store.close()


def test_0006_downgrades_to_0005(tmp_path: Path) -> None:
    with downgraded(tmp_path, "0005") as (connection, config):
        assert "sites" not in sa.inspect(connection).get_table_names()
        command.upgrade(config, "head")
        connection.commit()
        assert "sites" in sa.inspect(connection).get_table_names()
