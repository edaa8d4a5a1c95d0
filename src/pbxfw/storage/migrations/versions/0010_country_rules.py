"""Country rules and the country database (issue 17).

Revision ID: 0010
Revises: 0009

``country_rules``: one row per rule, part of a site's configuration (``site``,
``default`` on a single PBX; the site scoping of issue 16 reads it). ``codes``
is the canonical comma-separated list (``*``, ``unknown``, ISO codes);
``services`` a JSON object of the services the rule names.

``geo_database``: the country database every node of a fleet reads (one row,
``id`` 1): where it came from, its date, its range counts and the ranges
themselves, packed (storage/countries.py). An import replaces the row in one
transaction, so a node reads the old database or the new one, never a mix.
"""

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None

INT = sa.Integer().with_variant(sa.BigInteger(), "postgresql")


def upgrade() -> None:
    op.create_table(
        "country_rules",
        sa.Column("id", INT, primary_key=True),
        sa.Column("site", sa.String(64), nullable=False, server_default="default"),
        sa.Column("name", sa.String(64), nullable=False),
        sa.Column("codes", sa.Text(), nullable=False),
        sa.Column("services", sa.Text(), nullable=False),
        sa.UniqueConstraint("site", "name", name="uq_country_rules_site_name"),
    )
    op.create_table(
        "geo_database",
        sa.Column("id", INT, primary_key=True),
        sa.Column("source", sa.String(255), nullable=False),
        sa.Column("built", sa.String(10), nullable=False),
        sa.Column("loaded_at", sa.Float(), nullable=False),
        sa.Column("ipv4_ranges", INT, nullable=False),
        sa.Column("ipv6_ranges", INT, nullable=False),
        sa.Column("data", sa.LargeBinary(), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("geo_database")
    op.drop_table("country_rules")
