"""Users of the web page and API; bans; log read offsets; IPS counters.

Revision ID: 0002
Revises: 0001
"""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

#: 64-bit on both engines: SQLite's INTEGER already is (and INTEGER PRIMARY
#: KEY stays its rowid); PostgreSQL's INTEGER is 32-bit, too small for inode
#: numbers, log offsets, counters and the ids a document may carry.
INT = sa.Integer().with_variant(sa.BigInteger(), "postgresql")


def upgrade() -> None:
    op.create_table(
        "users",
        sa.Column("id", INT, primary_key=True),
        sa.Column("name", sa.String(64), nullable=False, unique=True),
        sa.Column("password_hash", sa.Text, nullable=False),
        sa.Column("created_at", sa.Float, nullable=False),
    )
    op.create_table(
        "bans",
        sa.Column("id", INT, primary_key=True),
        sa.Column("subnet", sa.String(64), nullable=False),
        sa.Column("jail", sa.String(32), nullable=False),
        sa.Column("scope", sa.Text, nullable=False),
        sa.Column("reason", sa.Text, nullable=False),
        sa.Column("first_failure", sa.Float, nullable=False),
        sa.Column("last_failure", sa.Float, nullable=False),
        sa.Column("failures", INT, nullable=False),
        sa.Column("offence", INT, nullable=False),
        sa.Column("created_at", sa.Float, nullable=False),
        sa.Column("expires_at", sa.Float, nullable=False),
        sa.UniqueConstraint("subnet", "jail", name="uq_bans_subnet_jail"),
    )
    op.create_index("ix_bans_expires_at", "bans", ["expires_at"])
    op.create_table(
        "log_offsets",
        sa.Column("path", sa.Text, primary_key=True),
        sa.Column("inode", INT, nullable=False),
        sa.Column("offset", INT, nullable=False),
        sa.Column("updated_at", sa.Float, nullable=False),
    )
    op.create_table(
        "ips_counters",
        sa.Column("jail", sa.String(32), primary_key=True),
        sa.Column("lines", INT, nullable=False),
        sa.Column("failures", INT, nullable=False),
        sa.Column("bans", INT, nullable=False),
        sa.Column("whitelisted", INT, nullable=False),
    )


def downgrade() -> None:
    for table in ("ips_counters", "log_offsets", "bans", "users"):
        op.drop_table(table)
