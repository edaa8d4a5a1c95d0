"""Site scope: every configuration row belongs to one site (issue 16).

Revision ID: 0007
Revises: 0006

``networks``, ``custom_services``, ``settings`` and ``meta`` get a ``site``
column (every existing row: ``default``, the site of a single PBX). Names
and subnets are unique per site; custom service keys, setting keys and meta
keys are keys per site. Fleet-wide meta values (``bans_revision``: the bans
are the fleet's) take the site ``''``, which no site can be named
(domain.sites.FLEET_SITE; docs/fleet-sites.md).

The three key/value tables change their primary key: they are made anew and
their rows copied (the same statements on SQLite and PostgreSQL; they hold
a few dozen rows). ``networks`` keeps its id (and PostgreSQL its sequence):
only its column and unique constraints change, in batch mode for SQLite.

Downgrading keeps the site ``default`` (and the fleet-wide meta values) and
drops the configuration of every other site.
"""

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

#: Meta keys of the fleet, not of a site (storage.repository.FLEET_META).
_FLEET_META = ("bans_revision",)


def _columns(table: str) -> list[sa.Column[str]]:
    """The columns of a key/value table but ``site``, the key first."""
    return {
        "custom_services": [
            sa.Column("key", sa.String(32), nullable=False),
            sa.Column("label", sa.String(64), nullable=False),
            sa.Column("tcp", sa.Text, nullable=False),
            sa.Column("udp", sa.Text, nullable=False),
        ],
        "settings": [
            sa.Column("key", sa.String(64), nullable=False),
            sa.Column("value", sa.Text, nullable=False),
        ],
        "meta": [
            sa.Column("key", sa.String(64), nullable=False),
            sa.Column("value", sa.Text, nullable=False),
        ],
    }[table]


def _site_column() -> sa.Column[str]:
    return sa.Column("site", sa.String(64), nullable=False, server_default="default")


def _remake(table: str, *, scoped: bool, site_of_row: str) -> None:
    """Make ``table`` anew with (or without) ``site`` in its key and copy its rows.

    ``site_of_row``: the SQL expression of each copied row's site (scoped),
    or the condition of the rows kept (not scoped).
    """
    columns = _columns(table)
    names = ", ".join(c.name for c in columns)
    new = f"{table}_new"
    if scoped:
        op.create_table(
            new,
            _site_column(),
            *columns,
            sa.PrimaryKeyConstraint("site", "key", name=f"pk_{table}"),
        )
        op.execute(f"INSERT INTO {new} (site, {names}) SELECT {site_of_row}, {names} FROM {table}")
    else:
        # PostgreSQL's own name for it, as 0001 made it (the table is renamed below).
        op.create_table(new, *columns, sa.PrimaryKeyConstraint("key", name=f"{table}_pkey"))
        op.execute(f"INSERT INTO {new} ({names}) SELECT {names} FROM {table} WHERE {site_of_row}")
    op.drop_table(table)
    op.rename_table(new, table)


def upgrade() -> None:
    with op.batch_alter_table("networks") as batch:
        batch.add_column(_site_column())
        batch.drop_constraint("uq_networks_name", type_="unique")
        batch.drop_constraint("uq_networks_subnet", type_="unique")
        batch.create_unique_constraint("uq_networks_site_name", ["site", "name"])
        batch.create_unique_constraint("uq_networks_site_subnet", ["site", "subnet"])
    fleet = ", ".join(f"'{k}'" for k in _FLEET_META)
    _remake("custom_services", scoped=True, site_of_row="'default'")
    _remake("settings", scoped=True, site_of_row="'default'")
    _remake(
        "meta", scoped=True, site_of_row=f"CASE WHEN key IN ({fleet}) THEN '' ELSE 'default' END"
    )


def downgrade() -> None:
    op.execute("DELETE FROM networks WHERE site <> 'default'")
    with op.batch_alter_table("networks") as batch:
        batch.drop_constraint("uq_networks_site_name", type_="unique")
        batch.drop_constraint("uq_networks_site_subnet", type_="unique")
        batch.drop_column("site")
        batch.create_unique_constraint("uq_networks_name", ["name"])
        batch.create_unique_constraint("uq_networks_subnet", ["subnet"])
    _remake("custom_services", scoped=False, site_of_row="site = 'default'")
    _remake("settings", scoped=False, site_of_row="site = 'default'")
    _remake("meta", scoped=False, site_of_row="site IN ('default', '')")
