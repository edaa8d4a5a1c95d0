"""Migration 0013 (scanner fingerprint edits) upgrades a 0011 database, and goes back down."""

from __future__ import annotations

from pathlib import Path

import sqlalchemy as sa
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from pbxfw.domain.fingerprints import FingerprintEdit
from pbxfw.storage.models import Base
from pbxfw.storage.repository import Store
from tests.storage.migration_steps import database_at, downgraded, head, revisions, stored_version


def test_0013_upgrades_a_0011_database(tmp_path: Path) -> None:
    def fill(connection: sa.Connection) -> None:
        assert "fingerprint_edits" not in sa.inspect(connection).get_table_names()

    url = database_at(tmp_path, "0011", fill)
    store = Store.open(url, create=True)  # what `pbxfw init` does
    try:
        with store.engine.connect() as connection:
            assert stored_version(connection) == head()
            assert "0013" in revisions()
            context = MigrationContext.configure(connection, opts={"compare_type": True})
            assert compare_metadata(context, Base.metadata) == []
            count = connection.execute(sa.text("SELECT count(*) FROM fingerprint_edits")).scalar()
            assert count == 0
        with store.write() as repo:
            repo.add_fingerprint_edit(FingerprintEdit("User-Agent", "Foo"))
        with store.engine.connect() as connection:
            row = connection.execute(
                sa.text("SELECT site, header, folded, disabled FROM fingerprint_edits")
            ).one()
            assert tuple(row) == ("default", "User-Agent", "foo", False)
    finally:
        store.close()


def test_0013_downgrades_to_0011(tmp_path: Path) -> None:
    with downgraded(tmp_path, "0011") as (connection, config):
        assert "fingerprint_edits" not in sa.inspect(connection).get_table_names()
        command.upgrade(config, "head")
        connection.commit()
        assert "fingerprint_edits" in sa.inspect(connection).get_table_names()
