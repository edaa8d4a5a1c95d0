"""Networks, custom services, settings, meta (revision counter).

Revision ID: 0001
Revises:
"""

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

#: 64-bit on both engines: SQLite's INTEGER already is (and INTEGER PRIMARY
#: KEY stays its rowid); PostgreSQL's INTEGER is 32-bit, too small for inode
#: numbers, log offsets, counters and the ids a document may carry.
INT = sa.Integer().with_variant(sa.BigInteger(), "postgresql")


def upgrade() -> None:
    op.create_table(
        "networks",
        sa.Column("id", INT, primary_key=True),
        sa.Column("name", sa.String(64), nullable=False),
        sa.Column("subnet", sa.String(64), nullable=False),
        sa.Column("services", sa.Text, nullable=False),
        sa.Column("local", sa.Boolean, nullable=False),
        sa.Column("never_block", sa.Boolean, nullable=False),
        sa.Column("description", sa.String(255), nullable=False),
        sa.Column("permanent", sa.Boolean, nullable=False),
        sa.UniqueConstraint("name", name="uq_networks_name"),
        sa.UniqueConstraint("subnet", name="uq_networks_subnet"),
    )
    op.create_table(
        "custom_services",
        sa.Column("key", sa.String(32), primary_key=True),
        sa.Column("label", sa.String(64), nullable=False),
        sa.Column("tcp", sa.Text, nullable=False),
        sa.Column("udp", sa.Text, nullable=False),
    )
    op.create_table(
        "settings",
        sa.Column("key", sa.String(64), primary_key=True),
        sa.Column("value", sa.Text, nullable=False),
    )
    op.create_table(
        "meta",
        sa.Column("key", sa.String(64), primary_key=True),
        sa.Column("value", sa.Text, nullable=False),
    )


def downgrade() -> None:
    for table in ("meta", "settings", "custom_services", "networks"):
        op.drop_table(table)
