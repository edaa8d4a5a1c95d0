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


def upgrade() -> None:
    op.create_table(
        "users",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("name", sa.String(64), nullable=False, unique=True),
        sa.Column("password_hash", sa.Text, nullable=False),
        sa.Column("created_at", sa.Float, nullable=False),
    )
    op.create_table(
        "bans",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("subnet", sa.String(64), nullable=False),
        sa.Column("jail", sa.String(32), nullable=False),
        sa.Column("scope", sa.Text, nullable=False),
        sa.Column("reason", sa.Text, nullable=False),
        sa.Column("first_failure", sa.Float, nullable=False),
        sa.Column("last_failure", sa.Float, nullable=False),
        sa.Column("failures", sa.Integer, nullable=False),
        sa.Column("offence", sa.Integer, nullable=False),
        sa.Column("created_at", sa.Float, nullable=False),
        sa.Column("expires_at", sa.Float, nullable=False),
        sa.UniqueConstraint("subnet", "jail", name="uq_bans_subnet_jail"),
    )
    op.create_index("ix_bans_expires_at", "bans", ["expires_at"])
    op.create_table(
        "log_offsets",
        sa.Column("path", sa.Text, primary_key=True),
        sa.Column("inode", sa.Integer, nullable=False),
        sa.Column("offset", sa.Integer, nullable=False),
        sa.Column("updated_at", sa.Float, nullable=False),
    )
    op.create_table(
        "ips_counters",
        sa.Column("jail", sa.String(32), primary_key=True),
        sa.Column("lines", sa.Integer, nullable=False),
        sa.Column("failures", sa.Integer, nullable=False),
        sa.Column("bans", sa.Integer, nullable=False),
        sa.Column("whitelisted", sa.Integer, nullable=False),
    )


def downgrade() -> None:
    for table in ("ips_counters", "log_offsets", "bans", "users"):
        op.drop_table(table)
