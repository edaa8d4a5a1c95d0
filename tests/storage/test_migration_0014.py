"""Migration 0014 (a ban's evidence, who made an administrator's ban) upgrades an
older database, and goes back down.

A real SQLite file is brought to 0011 with Alembic and given a ban as that
version stored it, then upgraded as ``pbxfw init`` does: the ban is kept
without a maker (``who`` NULL) and without evidence, the schema is what
models.py says, evidence can be written, and removing the ban removes its
evidence (the foreign key's cascade, with SQLite's foreign keys on).
"""

from __future__ import annotations

import ipaddress
from datetime import UTC, datetime
from pathlib import Path

import sqlalchemy as sa
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from pbxfw.domain.bans import Ban
from pbxfw.domain.evidence import BanEvidence, EvidenceLine
from pbxfw.ips.events import BanDecision
from pbxfw.storage.evidence import ban_history, save_evidence
from pbxfw.storage.models import Base
from pbxfw.storage.repository import Store
from tests.storage.migration_steps import database_at, downgraded, head, revisions, stored_version

_BAN = (
    "INSERT INTO bans (subnet, jail, scope, reason, first_failure, last_failure, failures, "
    "offence, created_at, expires_at, origin, node, site, revision) VALUES "
    "(:subnet, 'manual', '*', 'r', 1, 1, 1, 1, 1, 9e9, 'manual', NULL, NULL, 1)"
)


def test_0014_keeps_old_bans_and_adds_evidence_that_goes_with_its_ban(tmp_path: Path) -> None:
    def fill(connection: sa.Connection) -> None:
        connection.execute(sa.text(_BAN), {"subnet": "192.0.2.1/32"})

    url = database_at(tmp_path, "0011", fill)
    store = Store.open(url, create=True)  # what `pbxfw init` does
    try:
        with store.engine.connect() as connection:
            assert stored_version(connection) == head()
            assert "0014" in revisions()
            context = MigrationContext.configure(connection, opts={"compare_type": True})
            assert compare_metadata(context, Base.metadata) == []
            assert connection.execute(sa.text("SELECT who FROM bans")).all() == [(None,)]
        with store.read() as repo:
            [(old, evidence)] = ban_history(repo, "192.0.2.1/32")
            assert (old.origin, old.who, evidence) == ("manual", None, None)
        moment = datetime.fromtimestamp(100.0, UTC)
        decision = BanDecision(
            ipaddress.ip_address("192.0.2.2"), "ssh", frozenset({"ssh"}), moment, 60, 1, moment, "r"
        )
        lines = (EvidenceLine("/var/log/auth.log", 7, "sshd: Failed password", 100.0, "e"),)
        ban = Ban.from_decision(decision, 100.0, evidence=BanEvidence("ssh", 1, 60, lines))
        with store.write() as repo:
            repo.save_bans([ban])
            assert save_evidence(repo, [ban], 100.0) == 1
        with store.read() as repo:
            [(_, kept)] = ban_history(repo, "192.0.2.2/32")
            assert kept is not None and kept.lines == lines
        with store.write() as repo:
            repo.remove_bans("192.0.2.2/32")
        with store.engine.connect() as connection:
            count = connection.execute(sa.text("SELECT count(*) FROM ban_evidence")).scalar_one()
            assert count == 0
    finally:
        store.close()


def test_0014_downgrades_to_0011(tmp_path: Path) -> None:
    with downgraded(tmp_path, "0011") as (connection, config):
        inspector = sa.inspect(connection)
        assert "ban_evidence" not in inspector.get_table_names()
        assert "who" not in {c["name"] for c in inspector.get_columns("bans")}
        command.upgrade(config, "head")
        connection.commit()
        inspector = sa.inspect(connection)
        assert "ban_evidence" in inspector.get_table_names()
        assert "who" in {c["name"] for c in inspector.get_columns("bans")}
