"""Migration 0009 (node-owned rows) upgrades an older database, and goes back down.

A real SQLite file is brought to the revision before 0009 with Alembic and given a log position,
a journal cursor, counters and a source status as that version stored them,
then upgraded as ``pbxfw init`` does: every row is kept with the empty node;
the first agent's node takes them over (its positions, its counters), a
second node starts with none of its own; two nodes then keep one position
each for the same path. Down again: one row per path, counters summed.
"""

from __future__ import annotations

from pathlib import Path

import sqlalchemy as sa
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from pbxfw.domain.sources import SourceStatus
from pbxfw.storage.db import _alembic_config
from pbxfw.storage.models import Base
from pbxfw.storage.repository import Store
from pbxfw.storage.source_status import source_statuses
from pbxfw.usecases.ips_state import reading_positions, save_log_offsets
from pbxfw.usecases.ips_status import ips_status
from pbxfw.usecases.source_status import record_source_statuses
from tests.storage.migration_steps import database_at, downgraded, head, revisions, stored_version


def _before(revision: str) -> str:
    """The revision ``revision`` upgrades from (the chain is re-made at merges)."""
    from alembic.script import ScriptDirectory

    down = ScriptDirectory.from_config(_alembic_config()).get_revision(revision).down_revision
    assert isinstance(down, str)
    return down


BEFORE = _before("0009")

FULL = "/var/log/asterisk/full"


def _fill_old(connection: sa.Connection) -> None:
    for sql in (
        'INSERT INTO log_offsets (path, inode, "offset", updated_at) '
        f"VALUES ('{FULL}', 77, 4096, 1.0)",
        'INSERT INTO log_offsets (path, inode, "offset", updated_at, journal_cursor) '
        "VALUES ('journal:ssh.service', 0, 0, 1.0, 's=abc;i=9')",
        "INSERT INTO ips_counters (jail, lines, failures, bans, whitelisted) "
        "VALUES ('asterisk', 100, 7, 1, 2)",
        "INSERT INTO source_status (source, jail, error, since, failures, updated_at) "
        f"VALUES ('{FULL}', 'asterisk', '', 1.0, 0, 1.0)",
    ):
        connection.execute(sa.text(sql))


def test_0009_upgrades_an_older_database_and_the_first_agent_keeps_its_rows(
    tmp_path: Path,
) -> None:
    url = database_at(tmp_path, BEFORE, _fill_old)
    store = Store.open(url, create=True)  # what `pbxfw init` does
    try:
        with store.engine.connect() as connection:
            assert stored_version(connection) == head()
            assert "0009" in revisions()
            context = MigrationContext.configure(connection, opts={"compare_type": True})
            assert compare_metadata(context, Base.metadata) == []
            for table in ("log_offsets", "ips_counters", "source_status"):
                key = sa.inspect(connection).get_pk_constraint(table)["constrained_columns"]
                assert key[0] == "node" and len(key) == 2, (table, key)
                nodes = connection.execute(sa.text(f"SELECT DISTINCT node FROM {table}"))
                assert nodes.scalars().all() == [""]
        # Before any agent: the fleet's view still shows the old counters.
        assert ips_status(store).jails["asterisk"]["lines"] == 100
        # The first agent (node pbx-1) takes over the position, the cursor
        # and the counters; the old source status is dropped (it writes its own).
        assert reading_positions(store, "pbx-1") == {
            FULL: (77, 4096),
            "journal:ssh.service": "s=abc;i=9",
        }
        assert ips_status(store, node="pbx-1").jails["asterisk"] == {
            "lines": 100,
            "failures": 7,
            "bans": 1,
            "whitelisted": 2,
        }
        with store.read() as repo:
            assert source_statuses(repo) == []
        # A second node has nothing of its own, and takes nothing again.
        assert reading_positions(store, "pbx-2") == {}
        assert reading_positions(store, "pbx-1")[FULL] == (77, 4096)
        # Two PBXs reading the same path keep one position each.
        save_log_offsets(store, {FULL: (5, 10)}, 2.0, node="pbx-2")
        save_log_offsets(store, {FULL: (77, 8192)}, 2.0, node="pbx-1")
        assert reading_positions(store, "pbx-2") == {FULL: (5, 10)}
        assert reading_positions(store, "pbx-1")[FULL] == (77, 8192)
    finally:
        store.close()


def test_node_rows_are_each_nodes_and_the_readers_sum_or_pick(tmp_path: Path) -> None:
    store = Store.open(f"sqlite:///{tmp_path / 'n.db'}", create=True)
    try:
        with store.write() as repo:
            repo.add_ips_counters("ssh", node="a", lines=3, failures=1)
            repo.add_ips_counters("ssh", node="b", lines=4, bans=2)
        for node in ("a", "b"):
            status = SourceStatus("/var/log/auth.log", "ssh", "", 1.0, 0, 1.0, node)
            record_source_statuses(store, [status], forget_all=True, node=node)
        whole = ips_status(store)
        assert whole.jails["ssh"] == {"lines": 7, "failures": 1, "bans": 2, "whitelisted": 0}
        assert [(s.node, s.source) for s in whole.sources] == [
            ("a", "/var/log/auth.log"),
            ("b", "/var/log/auth.log"),
        ]
        only_b = ips_status(store, node="b")
        assert only_b.jails["ssh"]["lines"] == 4
        assert [s.node for s in only_b.sources] == ["b"]
        assert only_b.as_json()["sources"][0]["node"] == "b"
        # One node forgetting its sources leaves the other's.
        record_source_statuses(store, [], forget_all=True, node="a")
        assert [s.node for s in ips_status(store).sources] == ["b"]
    finally:
        store.close()


def test_0009_downgrades_keeping_one_row_per_key(tmp_path: Path) -> None:
    with downgraded(tmp_path, "0009") as (connection, config):
        for node, offset, at in (("a", 10, 1.0), ("b", 20, 2.0)):
            connection.execute(
                sa.text(
                    'INSERT INTO log_offsets (node, path, inode, "offset", updated_at) '
                    f"VALUES ('{node}', '{FULL}', 1, {offset}, {at})"
                )
            )
            connection.execute(
                sa.text(
                    "INSERT INTO ips_counters (node, jail, lines, failures, bans, whitelisted) "
                    f"VALUES ('{node}', 'asterisk', {offset}, 1, 1, 0)"
                )
            )
        connection.commit()
        command.downgrade(config, BEFORE)
        connection.commit()
        assert connection.execute(sa.text('SELECT "offset" FROM log_offsets')).all() == [(20,)]
        counters = connection.execute(sa.text("SELECT lines, failures FROM ips_counters"))
        assert counters.all() == [(30, 2)]
        assert "node" not in {c["name"] for c in sa.inspect(connection).get_columns("log_offsets")}
        command.upgrade(config, "head")
        connection.commit()
        assert "node" in {c["name"] for c in sa.inspect(connection).get_columns("log_offsets")}
