"""Migration 0010 (country rules, the country database) upgrades a 0009 database, and goes back down.

A real SQLite file is brought to 0009 with Alembic and given a network as
that version stored it, then upgraded as ``pbxfw init`` does: the network is
kept, the two new tables are empty, and the schema is what models.py says.
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


def test_0010_upgrades_a_0009_database(tmp_path: Path) -> None:
    def fill(connection: sa.Connection) -> None:
        connection.execute(
            sa.text(
                "INSERT INTO networks (name, subnet, services, local, never_block, description, "
                "permanent) VALUES ('office', '10.0.0.0/8', '{\"sip\": \"allow\"}', 0, 0, '', 0)"
            )
        )
        assert "country_rules" not in sa.inspect(connection).get_table_names()

    url = database_at(tmp_path, "0009", fill)
    store = Store.open(url, create=True)  # what `pbxfw init` does
    try:
        with store.engine.connect() as connection:
            assert stored_version(connection) == head()
            assert "0010" in revisions()
            context = MigrationContext.configure(connection, opts={"compare_type": True})
            assert compare_metadata(context, Base.metadata) == []
            names = connection.execute(sa.text("SELECT name FROM networks")).scalars().all()
            assert names == ["office"]
            for table in ("country_rules", "geo_database"):
                count = connection.execute(sa.text(f"SELECT count(*) FROM {table}")).scalar()
                assert count == 0
        with store.write() as repo:
            from pbxfw.domain.countries import CountryRule

            repo.add_country_rule(CountryRule("DACH", ("AT", "DE")))
        with store.engine.connect() as connection:
            row = connection.execute(sa.text("SELECT site, codes FROM country_rules")).one()
            assert tuple(row) == ("default", "AT,DE")
    finally:
        store.close()


def test_0010_downgrades_to_0009(tmp_path: Path) -> None:
    with downgraded(tmp_path, "0009") as (connection, config):
        names = sa.inspect(connection).get_table_names()
        assert "country_rules" not in names and "geo_database" not in names
        command.upgrade(config, "head")
        connection.commit()
        assert "country_rules" in sa.inspect(connection).get_table_names()
