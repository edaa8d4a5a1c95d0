"""Migration 0016 (the dashboard's aggregates) upgrades an older database, and goes back down.

A real SQLite file at 0011 is upgraded as ``pbxfw init`` does: the five
tables exist as models.py says, empty, and take an agent's tallies; the
downgrade removes them and the upgrade brings them back.
"""

from __future__ import annotations

from pathlib import Path

import sqlalchemy as sa
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from pbxfw.storage.aggregates import Tallies
from pbxfw.storage.models import Base
from pbxfw.storage.repository import Store
from pbxfw.usecases.dashboard import record_drops, record_tallies
from tests.storage.migration_steps import database_at, downgraded, head, revisions, stored_version

TABLES = {"attack_hours", "attack_sources", "failure_totals", "ban_totals", "drop_counters"}


def test_0016_adds_the_aggregate_tables(tmp_path: Path) -> None:
    url = database_at(tmp_path, "0011", lambda _connection: None)
    store = Store.open(url, create=True)  # what `pbxfw init` does
    try:
        with store.engine.connect() as connection:
            assert stored_version(connection) == head()
            assert "0016" in revisions()
            context = MigrationContext.configure(connection, opts={"compare_type": True})
            assert compare_metadata(context, Base.metadata) == []
            assert set(sa.inspect(connection).get_table_names()) >= TABLES
        record_tallies(
            store,
            "pbx1",
            Tallies({(3600, "ssh", "e"): 2}, {(0, "192.0.2.1"): ("ssh", 2)}, {("ssh", "e"): 2}, {}),
            7200.0,
        )
        record_drops(store, "pbx1", {("jail", "ssh"): (3, 180)}, 7200.0)
        with store.engine.connect() as connection:
            assert connection.execute(sa.text("SELECT failures FROM failure_totals")).scalar() == 2
            assert connection.execute(sa.text("SELECT bytes FROM drop_counters")).scalar() == 180
    finally:
        store.close()


def test_0016_downgrades_to_0011(tmp_path: Path) -> None:
    with downgraded(tmp_path, "0011") as (connection, config):
        assert not TABLES & set(sa.inspect(connection).get_table_names())
        command.upgrade(config, "head")
        connection.commit()
        assert set(sa.inspect(connection).get_table_names()) >= TABLES
