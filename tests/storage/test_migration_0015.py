"""Migration 0015 (the history of configuration changes) upgrades an older
database, and goes back down.

A real SQLite file is brought to 0011 with Alembic and given a configuration
as that version stored it, then upgraded as ``pbxfw init`` does: the history
is empty, the schema is what models.py says, and the first change after the
upgrade records the configuration as it was before it, then the change.
"""

from __future__ import annotations

from pathlib import Path

import sqlalchemy as sa
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from pbxfw.storage.models import Base
from pbxfw.storage.repository import Store
from pbxfw.usecases import ConfigService, NetworkChange
from tests.storage.migration_steps import database_at, downgraded, head, revisions, stored_version

_NETWORK = (
    "INSERT INTO networks (id, site, name, subnet, services, local, never_block, permanent, "
    "description) VALUES (:id, 'default', :name, :subnet, :services, 0, 0, :permanent, '')"
)


def test_0015_starts_an_empty_history_and_the_first_change_keeps_the_one_before(
    tmp_path: Path,
) -> None:
    def fill(connection: sa.Connection) -> None:
        services = '{"sip": "allow", "ssh": "block"}'
        for ident, name, subnet, permanent in (
            (1, "Internet", "0.0.0.0/0", 1),
            (2, "Internet (IPv6)", "::/0", 1),
            (3, "Office", "10.1.0.0/16", 0),
        ):
            connection.execute(
                sa.text(_NETWORK),
                {
                    "id": ident,
                    "name": name,
                    "subnet": subnet,
                    "services": services,
                    "permanent": permanent,
                },
            )
        connection.execute(
            sa.text("INSERT INTO meta (site, key, value) VALUES ('default', 'revision', '4')")
        )

    url = database_at(tmp_path, "0011", fill)
    store = Store.open(url, create=True)  # what `pbxfw init` does
    try:
        with store.engine.connect() as connection:
            assert stored_version(connection) == head()
            assert "0015" in revisions()
            context = MigrationContext.configure(connection, opts={"compare_type": True})
            assert compare_metadata(context, Base.metadata) == []
            assert connection.execute(sa.text("SELECT count(*) FROM config_history")).scalar() == 0
        svc = ConfigService(store)
        before = svc.export_document()
        svc.update_network("Office", NetworkChange(allow=["ssh"]))
        change, baseline = svc.history()
        assert (baseline.actor, baseline.via) == ("pbxfw", "system")
        assert svc.history_entry(baseline.rev).entry.document == before
        assert change.summary == "network Office: ssh block → allow"
        assert svc.history_entry(change.rev).against == baseline.rev
    finally:
        store.close()


def test_0015_downgrades_to_0011(tmp_path: Path) -> None:
    with downgraded(tmp_path, "0011") as (connection, config):
        assert "config_history" not in sa.inspect(connection).get_table_names()
        command.upgrade(config, "head")
        connection.commit()
        assert "config_history" in sa.inspect(connection).get_table_names()
