"""Migration 0018 (the accounts attackers tried, ``attack_users``) upgrades an
older database, and goes back down.

A real SQLite file at 0011 is upgraded as ``pbxfw init`` does: the table
exists as models.py says, empty, takes an agent's tallies (with the other
aggregates, in one flush), keeps its bound per hour and jail, is pruned with
them, and is read back as the dashboard's top lists; the downgrade removes
it and the upgrade brings it back. Writes and reads also run on PostgreSQL
(the ``db_url`` fixture).
"""

from __future__ import annotations

from pathlib import Path

import sqlalchemy as sa
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from pbxfw.storage.aggregates import KEEP_SECONDS, Tallies, top_users
from pbxfw.storage.attack_users import USERS_PER_HOUR
from pbxfw.storage.models import Base
from pbxfw.storage.repository import Store
from pbxfw.usecases.dashboard import record_tallies
from tests.storage.migration_steps import database_at, downgraded, head, revisions, stored_version

HOUR = 3600


def _tallies(users: dict[tuple[int, str, str], int]) -> Tallies:
    hours: dict[tuple[int, str, str], int] = {}
    for (hour, jail, _account), n in users.items():
        hours[hour, jail, "e"] = hours.get((hour, jail, "e"), 0) + n
    return Tallies(hours, {}, {}, {}, users)


def test_0018_adds_the_attack_users_table(tmp_path: Path) -> None:
    url = database_at(tmp_path, "0011", lambda _connection: None)
    store = Store.open(url, create=True)  # what `pbxfw init` does
    try:
        with store.engine.connect() as connection:
            assert stored_version(connection) == head()
            assert "0018" in revisions()
            context = MigrationContext.configure(connection, opts={"compare_type": True})
            assert compare_metadata(context, Base.metadata) == []
            assert "attack_users" in sa.inspect(connection).get_table_names()
            assert connection.execute(sa.text("SELECT count(*) FROM attack_users")).scalar() == 0
        record_tallies(store, "pbx1", _tallies({(HOUR, "ssh", "root"): 2}), 2 * HOUR)
        record_tallies(store, "pbx1", _tallies({(HOUR, "ssh", "root"): 3}), 2 * HOUR)
        with store.read() as repo:
            assert top_users(repo, 0, ["ssh"], 10) == [("root", "ssh", 5)]
    finally:
        store.close()


def test_0018_downgrades_to_0017(tmp_path: Path) -> None:
    with downgraded(tmp_path, "0017") as (connection, config):
        assert "attack_users" not in sa.inspect(connection).get_table_names()
        command.upgrade(config, "head")
        connection.commit()
        assert "attack_users" in sa.inspect(connection).get_table_names()


def test_accounts_are_bounded_summed_and_pruned(db_url: str) -> None:
    store = Store.open(db_url, create=True)
    try:
        now = 10 * 86400
        hour = now - now % HOUR
        # A scanner: many names once each, and a few names often.
        flood = {(hour, "ssh", f"name{i:05}"): 1 for i in range(3 * USERS_PER_HOUR)}
        flood |= {(hour, "ssh", "root"): 50, (hour, "ssh", "admin"): 20}
        record_tallies(store, "pbx1", _tallies(flood), now)
        record_tallies(store, "pbx2", _tallies({(hour, "ssh", "root"): 7}), now)
        record_tallies(
            store, "pbx1", _tallies({(hour - HOUR, "asterisk", "100"): 4}), now
        )  # another hour, another jail
        with store.engine.connect() as connection:
            kept = connection.execute(
                sa.text("SELECT count(*) FROM attack_users WHERE node = 'pbx1' AND jail = 'ssh'")
            ).scalar()
        assert kept == USERS_PER_HOUR
        with store.read() as repo:
            top = top_users(repo, hour - HOUR, ["ssh", "web", "ami"], 3)
            assert top == [("root", "ssh", 57), ("admin", "ssh", 20), ("name00000", "ssh", 1)]
            assert top_users(repo, 0, ["asterisk"], 10) == [("100", "asterisk", 4)]
            assert top_users(repo, hour, ["asterisk"], 10) == []  # before the hour asked for
        # Rows older than KEEP_SECONDS go with the flush that writes.
        later = now + KEEP_SECONDS + 2 * HOUR
        record_tallies(store, "pbx1", _tallies({(later - later % HOUR, "web", "x"): 1}), later)
        with store.read() as repo:
            assert top_users(repo, 0, ["ssh", "web", "ami", "asterisk"], 10) == [("x", "web", 1)]
    finally:
        store.close()


def test_hostile_accounts_are_stored_unchanged_or_replaced_never_refused(db_url: str) -> None:
    store = Store.open(db_url, create=True)
    try:
        names = {
            "<script>alert(1)</script>": "<script>alert(1)</script>",
            "a\x00b": "a\ufffdb",  # NUL: no PostgreSQL text holds it
            "\ud800x": "\ufffdx",  # a lone surrogate: no UTF-8 database takes it
            "\x01" * 64: "\ufffd" * 64,
            "é" * 64: "é" * 64,
        }
        record_tallies(
            store, "pbx1", _tallies({(HOUR, "web", name): 1 for name in names}), 2 * HOUR
        )
        with store.read() as repo:
            got = {a for a, _j, _n in top_users(repo, 0, ["web"], 10)}
        assert got == set(names.values())
    finally:
        store.close()
