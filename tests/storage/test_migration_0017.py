"""Migration 0017 (notification channels and their delivery state) upgrades a 0011
database, and goes back down.

A real SQLite file is brought to 0011 with Alembic and given a network as
that version stored it, then upgraded as ``pbxfw init`` does: the network is
kept, the two new tables are empty, the schema is what models.py says, and a
channel and a status can be written and read back in the site ``default``.
"""

from __future__ import annotations

from pathlib import Path

import sqlalchemy as sa
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from pbxfw.domain.notifications import Channel, ChannelStatus
from pbxfw.storage.channels import add_channel, channel_statuses, channels, save_channel_statuses
from pbxfw.storage.models import Base
from pbxfw.storage.repository import Store
from tests.storage.migration_steps import database_at, downgraded, head, revisions, stored_version


def test_0017_upgrades_a_0011_database(tmp_path: Path) -> None:
    def fill(connection: sa.Connection) -> None:
        connection.execute(
            sa.text(
                "INSERT INTO networks (name, subnet, services, local, never_block, description, "
                "permanent) VALUES ('office', '10.0.0.0/8', '{\"sip\": \"allow\"}', 0, 0, '', 0)"
            )
        )
        assert "notify_channels" not in sa.inspect(connection).get_table_names()

    url = database_at(tmp_path, "0011", fill)
    store = Store.open(url, create=True)  # what `pbxfw init` does
    try:
        with store.engine.connect() as connection:
            assert stored_version(connection) == head()
            assert "0017" in revisions()
            context = MigrationContext.configure(connection, opts={"compare_type": True})
            assert compare_metadata(context, Base.metadata) == []
            names = connection.execute(sa.text("SELECT name FROM networks")).scalars().all()
            assert names == ["office"]
            for table in ("notify_channels", "notify_status"):
                count = connection.execute(sa.text(f"SELECT count(*) FROM {table}")).scalar()
                assert count == 0
        with store.write() as repo:
            add_channel(repo, Channel("team", "https://example.com/hook", "generic"), 1.0)
            save_channel_statuses(repo, [ChannelStatus("team", "pbx-a", sent=3, updated_at=2.0)])
        with store.read() as repo:
            assert channels(repo) == [Channel("team", "https://example.com/hook", "generic", id=1)]
            [status] = channel_statuses(repo)
            assert (status.node, status.sent, status.dropped) == ("pbx-a", 3, 0)
        with store.engine.connect() as connection:
            row = connection.execute(sa.text("SELECT site, name FROM notify_channels")).one()
            assert tuple(row) == ("default", "team")
    finally:
        store.close()


def test_0017_downgrades_to_0011(tmp_path: Path) -> None:
    with downgraded(tmp_path, "0011") as (connection, config):
        names = sa.inspect(connection).get_table_names()
        assert "notify_channels" not in names and "notify_status" not in names
        command.upgrade(config, "head")
        connection.commit()
        names = sa.inspect(connection).get_table_names()
        assert "notify_channels" in names and "notify_status" in names
