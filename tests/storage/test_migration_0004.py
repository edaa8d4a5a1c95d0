"""Migration 0004 (the journal's cursor on ``log_offsets``) upgrades a 0003 database.

A real SQLite file is brought to 0003 with Alembic, given a file's offset
as the agent of that version stored it, then upgraded as ``pbxfw init``
does: the offset is kept, and journal cursors are stored beside it.
"""

from __future__ import annotations

from pathlib import Path

import sqlalchemy as sa

from pbxfw.storage.repository import Store
from pbxfw.usecases.ips_state import journal_cursors, log_offsets, save_log_offsets
from tests.storage.migration_steps import database_at, downgraded, head, revisions, stored_version

CURSOR = "s=69820a28b0b14e21b8f06c5913559500;i=3;b=0123456789abcdef0123456789abcdef;m=1;t=2;x=3"


def test_0004_upgrades_a_0003_database_and_keeps_its_offsets(tmp_path: Path) -> None:
    def fill(connection: sa.Connection) -> None:
        connection.execute(
            sa.text(
                'INSERT INTO log_offsets (path, inode, "offset", updated_at) '
                "VALUES ('/var/log/auth.log', 42, 1234, 1.0)"
            )
        )
        columns = {c["name"] for c in sa.inspect(connection).get_columns("log_offsets")}
        assert "journal_cursor" not in columns

    url = database_at(tmp_path, "0003", fill)
    store = Store.open(url, create=True)  # what `pbxfw init` does
    try:
        with store.engine.connect() as connection:
            # Upgraded to the newest revision, through 0004.
            assert stored_version(connection) == head()
            assert "0004" in revisions()
            columns = {c["name"] for c in sa.inspect(connection).get_columns("log_offsets")}
            assert "journal_cursor" in columns
        assert log_offsets(store) == {"/var/log/auth.log": (42, 1234)}
        assert journal_cursors(store) == {}
        save_log_offsets(
            store, {"/var/log/auth.log": (42, 2000)}, 2.0, {"journal:ssh.service": CURSOR}
        )
        # Files and journal sources are read back apart, each as it was stored.
        assert log_offsets(store) == {"/var/log/auth.log": (42, 2000)}
        assert journal_cursors(store) == {"journal:ssh.service": CURSOR}
        save_log_offsets(store, {}, 3.0, {"journal:ssh.service": CURSOR + "0"})
        assert journal_cursors(store) == {"journal:ssh.service": CURSOR + "0"}
    finally:
        store.close()


def test_0004_downgrades_to_0003(tmp_path: Path) -> None:
    with downgraded(tmp_path, "0003") as (connection, _config):
        columns = {c["name"] for c in sa.inspect(connection).get_columns("log_offsets")}
    assert "journal_cursor" not in columns
