"""Nodes: the PBXs running the agent, and what each last reported.

Revision ID: 0005
Revises: 0004

``nodes``: one row per node (``pbxfw agent --node NAME``, default the host
name), written by its agent at start and every 5 s (one UPDATE), read by
``pbxfw node list``, ``GET /api/v1/nodes`` and the PBXs page. ``site`` is
text (``default``) until the sites work adds the ``sites`` table and its
foreign key. Times are epoch seconds (Float) as elsewhere; the counters and
the revision are 64-bit on PostgreSQL too.
"""

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

_INT64 = sa.Integer().with_variant(sa.BigInteger(), "postgresql")


def upgrade() -> None:
    op.create_table(
        "nodes",
        sa.Column("name", sa.String(63), primary_key=True),
        sa.Column("site", sa.String(64), nullable=False, server_default="default"),
        sa.Column("registered_at", sa.Float, nullable=False),
        sa.Column("started_at", sa.Float, nullable=False),
        sa.Column("last_seen", sa.Float, nullable=False),
        sa.Column("applied_revision", _INT64, nullable=True),
        sa.Column("kernel_bans", _INT64, nullable=False, server_default="0"),
        sa.Column("version", sa.String(64), nullable=False, server_default=""),
        sa.Column("log_lag_bytes", _INT64, nullable=False, server_default="0"),
        sa.Column("last_error", sa.Text, nullable=False, server_default=""),
    )


def downgrade() -> None:
    op.drop_table("nodes")
