"""Migration 0011 (a ban's origin, node, site and revision) upgrades an older
database, and goes back down.

A real SQLite file is brought to 0010 with Alembic and given bans as that
version stored them (one an administrator's, one a jail's) and a ban
revision, then upgraded as ``pbxfw init`` does: the administrator's ban reads
``manual`` without a site, the jail's ``jail:asterisk`` in the site
``default``, both carry the current ban revision, and the schema is what
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

_BAN = (
    "INSERT INTO bans (subnet, jail, scope, reason, first_failure, last_failure, failures, "
    "offence, created_at, expires_at) VALUES (:subnet, :jail, 'sip', 'r', 1, 1, 1, 1, 1, 9e9)"
)


def test_0011_gives_old_bans_their_origin_and_the_current_revision(tmp_path: Path) -> None:
    def fill(connection: sa.Connection) -> None:
        connection.execute(sa.text(_BAN), {"subnet": "192.0.2.1/32", "jail": "manual"})
        connection.execute(sa.text(_BAN), {"subnet": "192.0.2.2/32", "jail": "asterisk"})
        connection.execute(
            sa.text("INSERT INTO meta (site, key, value) VALUES ('', 'bans_revision', '7')")
        )

    url = database_at(tmp_path, "0010", fill)
    store = Store.open(url, create=True)  # what `pbxfw init` does
    try:
        with store.engine.connect() as connection:
            assert stored_version(connection) == head()
            assert "0011" in revisions()
            context = MigrationContext.configure(connection, opts={"compare_type": True})
            assert compare_metadata(context, Base.metadata) == []
            rows = connection.execute(
                sa.text("SELECT subnet, origin, node, site, revision FROM bans ORDER BY subnet")
            ).all()
            assert [tuple(r) for r in rows] == [
                ("192.0.2.1/32", "manual", None, None, 7),
                ("192.0.2.2/32", "jail:asterisk", None, "default", 7),
            ]
        with store.read() as repo:
            bans = repo.bans()
            assert [b.origin for b in bans] == ["manual", "jail:asterisk"]
            assert repo.ban_revisions() == (7, 0)
            assert repo.bans(since=7) == []
        # A new write carries the next revision; the old rows are not re-read.
        with store.write() as repo:
            repo.remove_bans("192.0.2.1/32")
        with store.read() as repo:
            assert repo.ban_revisions() == (8, 8)
    finally:
        store.close()


def test_0011_downgrades_to_0010(tmp_path: Path) -> None:
    with downgraded(tmp_path, "0010") as (connection, config):
        columns = {c["name"] for c in sa.inspect(connection).get_columns("bans")}
        assert not columns & {"origin", "node", "site", "revision"}
        command.upgrade(config, "head")
        connection.commit()
        columns = {c["name"] for c in sa.inspect(connection).get_columns("bans")}
        assert {"origin", "node", "site", "revision"} <= columns
