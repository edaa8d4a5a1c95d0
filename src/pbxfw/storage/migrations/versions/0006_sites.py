"""Sites: each one configuration of the fleet (issue 16).

Revision ID: 0006
Revises: 0005

``sites``: one row per site, made by ``pbxfw site add NAME`` (and here, for
every database, the site ``default`` that a single PBX uses without ever
naming it). Administrators, bans and nodes are fleet-wide; a node belongs to
one site (``nodes.site``). The configuration tables gain their ``site``
column in the migration that scopes them. Times are epoch seconds (Float) as
elsewhere.
"""

import time

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    sites = op.create_table(
        "sites",
        sa.Column("name", sa.String(64), primary_key=True),
        sa.Column("created_at", sa.Float, nullable=False),
    )
    op.bulk_insert(sites, [{"name": "default", "created_at": time.time()}])


def downgrade() -> None:
    op.drop_table("sites")
