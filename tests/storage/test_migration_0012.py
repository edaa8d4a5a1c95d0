"""Migration 0012 (blocklist feeds, each node's feed status) upgrades a 0011 database, and goes back down.

A real SQLite file is brought to 0011 with Alembic and given a network and a
ban as that version stored them, then upgraded as ``pbxfw init`` does: the
rows are kept, the two new tables are empty, the schema is what models.py
says, and a feed and a status can be written and read back (site-scoped).
"""

from __future__ import annotations

from pathlib import Path

import sqlalchemy as sa
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from pbxfw.domain.feeds import Feed
from pbxfw.storage import feeds as rows
from pbxfw.storage.models import Base
from pbxfw.storage.repository import Store
from tests.storage.migration_steps import database_at, downgraded, head, revisions, stored_version


def test_0012_upgrades_a_0011_database(tmp_path: Path) -> None:
    def fill(connection: sa.Connection) -> None:
        connection.execute(
            sa.text(
                "INSERT INTO networks (name, subnet, services, local, never_block, description, "
                "permanent) VALUES ('office', '10.0.0.0/8', '{\"sip\": \"allow\"}', 0, 0, '', 0)"
            )
        )
        assert "feeds" not in sa.inspect(connection).get_table_names()

    url = database_at(tmp_path, "0011", fill)
    store = Store.open(url, create=True)  # what `pbxfw init` does
    try:
        with store.engine.connect() as connection:
            assert stored_version(connection) == head()
            assert "0012" in revisions()
            context = MigrationContext.configure(connection, opts={"compare_type": True})
            assert compare_metadata(context, Base.metadata) == []
            names = connection.execute(sa.text("SELECT name FROM networks")).scalars().all()
            assert names == ["office"]
            for table in ("feeds", "feed_status"):
                count = connection.execute(sa.text(f"SELECT count(*) FROM {table}")).scalar()
                assert count == 0
        with store.write() as repo:
            rows.add_feed(repo, Feed("drop", "https://x/drop.txt", headers=(("A", "b"),)))
            rows.save_feed_status(
                repo, rows.FeedStatus(node="n1", feed="drop", entries=5, refused={"x": 1})
            )
        with store.read() as repo:
            [feed] = rows.feeds(repo)
            assert (feed.name, feed.scope, feed.headers) == ("drop", ("all",), (("A", "b"),))
            [status] = rows.feed_statuses(repo, "n1")
            assert (status.entries, status.refused) == (5, {"x": 1})
        with store.engine.connect() as connection:
            site = connection.execute(sa.text("SELECT site FROM feeds")).scalar()
            assert site == "default"
    finally:
        store.close()


def test_0012_downgrades_to_0011(tmp_path: Path) -> None:
    with downgraded(tmp_path, "0011") as (connection, config):
        tables = set(sa.inspect(connection).get_table_names())
        assert not tables & {"feeds", "feed_status"}
        command.upgrade(config, "head")
        connection.commit()
        assert {"feeds", "feed_status"} <= set(sa.inspect(connection).get_table_names())
