"""Migration 0007 (site scope) upgrades a 0006 database with data, and goes back down.

A real SQLite file is brought to 0006 with Alembic and given a configuration
as that version stored it (networks, a custom service, settings, the
revisions), then upgraded as ``pbxfw init`` does: every row is kept in the
site ``default``, ``bans_revision`` becomes the fleet's (site ``''``), the
schema is what models.py says, and a second site can use the same network
name, subnet, service key and setting key.
"""

from __future__ import annotations

from pathlib import Path

import sqlalchemy as sa
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from pbxfw.storage.models import Base
from pbxfw.storage.repository import Store
from pbxfw.usecases.config import ConfigService
from pbxfw.usecases.sites import SiteService
from tests.storage.migration_steps import database_at, downgraded, head, revisions, stored_version

_SERVICES = '{"sip": "allow", "ssh": "block"}'


def _fill_0006(connection: sa.Connection) -> None:
    for name, subnet, permanent in (
        ("Internet", "0.0.0.0/0", True),
        ("Internet IPv6", "::/0", True),
        ("Office", "10.1.0.0/16", False),
    ):
        connection.execute(
            sa.text(
                "INSERT INTO networks (name, subnet, services, local, never_block, "
                "description, permanent) VALUES (:n, :s, :v, 0, 0, '', :p)"
            ),
            {"n": name, "s": subnet, "v": _SERVICES, "p": permanent},
        )
    connection.execute(
        sa.text(
            "INSERT INTO custom_services (key, label, tcp, udp) "
            "VALUES ('prov', 'Provisioning', '8443', '')"
        )
    )
    connection.execute(sa.text("INSERT INTO settings (key, value) VALUES ('sip_port', '5070')"))
    for key, value in (("revision", "7"), ("applied_revision", "6"), ("bans_revision", "12")):
        connection.execute(
            sa.text("INSERT INTO meta (key, value) VALUES (:k, :v)"), {"k": key, "v": value}
        )


def test_0007_upgrades_a_0006_database_into_the_site_default(tmp_path: Path) -> None:
    url = database_at(tmp_path, "0006", _fill_0006)
    store = Store.open(url, create=True)  # what `pbxfw init` does
    try:
        with store.engine.connect() as connection:
            assert stored_version(connection) == head()
            assert "0007" in revisions()
            context = MigrationContext.configure(connection, opts={"compare_type": True})
            assert compare_metadata(context, Base.metadata) == []
            rows = connection.execute(sa.text("SELECT site, name FROM networks ORDER BY id")).all()
            assert [tuple(r) for r in rows] == [
                ("default", "Internet"),
                ("default", "Internet IPv6"),
                ("default", "Office"),
            ]
            meta = connection.execute(sa.text("SELECT site, key, value FROM meta")).all()
            assert sorted(tuple(r) for r in meta) == [
                ("", "bans_revision", "12"),
                ("default", "applied_revision", "6"),
                ("default", "revision", "7"),
            ]
        config = ConfigService(store)
        assert config.revision() == 7
        assert [n.name for n in config.configuration().networks] == [
            "Internet",
            "Internet IPv6",
            "Office",
        ]
        assert [c.key for c in config.configuration().custom_services] == ["prov"]
        assert config.settings().sip_port == 5070
        with store.read() as repo:
            assert repo.get_meta("bans_revision") == "12"
        # The same name, subnet, key and setting in a second site.
        SiteService(store).add("branch")
        branch = ConfigService(store, site="branch")
        from pbxfw.usecases.config import NetworkChange

        branch.add_network(NetworkChange(name="Office", subnet="10.1.0.0/16"))
        branch.add_service("prov", "Provisioning", "8443", "")
        branch.update_settings({"sip_port": 5080})
        assert config.settings().sip_port == 5070
        assert branch.settings().sip_port == 5080
        assert config.revision() == 7
        with store.read() as repo:
            assert repo.get_meta("bans_revision") == "12"
    finally:
        store.close()


def test_0007_downgrades_to_0006_keeping_the_site_default(tmp_path: Path) -> None:
    url = database_at(tmp_path, "0006", _fill_0006)
    store = Store.open(url, create=True)
    try:
        SiteService(store).add("branch")
    finally:
        store.close()
    engine = sa.create_engine(url)
    try:
        from pbxfw.storage.db import _alembic_config

        config = _alembic_config()
        with engine.connect() as connection:
            config.attributes["connection"] = connection
            command.downgrade(config, "0006")
            connection.commit()
            columns = {c["name"] for c in sa.inspect(connection).get_columns("networks")}
            assert "site" not in columns
            names = connection.execute(sa.text("SELECT name FROM networks ORDER BY id")).all()
            assert [r[0] for r in names] == ["Internet", "Internet IPv6", "Office"]
            meta = connection.execute(sa.text("SELECT key, value FROM meta ORDER BY key")).all()
            assert [tuple(r) for r in meta] == [
                ("applied_revision", "6"),
                ("bans_revision", "12"),
                ("revision", "7"),
            ]
            services = connection.execute(sa.text("SELECT key FROM custom_services")).all()
            assert [r[0] for r in services] == ["prov"]
            # Back up again: the rows land in `default` once more.
            command.upgrade(config, "head")
            connection.commit()
            sites = connection.execute(sa.text("SELECT DISTINCT site FROM networks")).all()
            assert [r[0] for r in sites] == ["default"]
    finally:
        engine.dispose()


def test_0007_downgrade_of_a_fresh_database(tmp_path: Path) -> None:
    with downgraded(tmp_path, "0006") as (connection, config):
        assert "site" not in {c["name"] for c in sa.inspect(connection).get_columns("meta")}
        command.upgrade(config, "head")
        connection.commit()
        assert "site" in {c["name"] for c in sa.inspect(connection).get_columns("meta")}
