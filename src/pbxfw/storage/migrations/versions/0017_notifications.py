"""Notification channels and their delivery state (issue 19).

Revision ID: 0017
Revises: 0016

``notify_channels``: one row per channel, part of a site's configuration
(``site``, ``default`` on a single PBX): its name, its target URL (with its
secrets: the nodes of the site send through it), its template.

``notify_status``: what each node's agent last saw of each channel (the
rows each node owns, like ``source_status``): the last message sent, the
last error and when, the messages given up after their retries, those
dropped beyond the queue bound. ``pbxfw notify list`` shows them.
"""

import sqlalchemy as sa
from alembic import op

revision = "0017"
down_revision = "0016"
branch_labels = None
depends_on = None

INT = sa.Integer().with_variant(sa.BigInteger(), "postgresql")


def upgrade() -> None:
    op.create_table(
        "notify_channels",
        sa.Column("id", INT, primary_key=True),
        sa.Column("site", sa.String(64), nullable=False, server_default="default"),
        sa.Column("name", sa.String(64), nullable=False),
        sa.Column("url", sa.Text(), nullable=False),
        sa.Column("template", sa.String(16), nullable=False),
        sa.Column("created_at", sa.Float(), nullable=False),
        sa.UniqueConstraint("site", "name", name="uq_notify_channels_site_name"),
    )
    op.create_table(
        "notify_status",
        sa.Column("node", sa.String(63), primary_key=True),
        sa.Column("site", sa.String(64), primary_key=True),
        sa.Column("channel", sa.String(64), primary_key=True),
        sa.Column("last_sent_at", sa.Float(), nullable=True),
        sa.Column("last_error", sa.Text(), nullable=False),
        sa.Column("last_error_at", sa.Float(), nullable=True),
        sa.Column("sent", INT, nullable=False),
        sa.Column("failed", INT, nullable=False),
        sa.Column("dropped", INT, nullable=False),
        sa.Column("digest_at", sa.Float(), nullable=True),
        sa.Column("updated_at", sa.Float(), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("notify_status")
    op.drop_table("notify_channels")
