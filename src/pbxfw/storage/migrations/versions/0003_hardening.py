"""Hardening: revoked web sessions, login throttling, log-source health.

Revision ID: 0003
Revises: 0002

- ``revoked_sessions``: a logged-out session id stays refused until its
  cookie would have expired anyway, across restarts and web workers.
- ``users.sessions_valid_after``: ``pbxfw user logout NAME`` ends every
  session of a user issued before that moment.
- ``login_throttle``: failed logins counted per account and per client
  address, shared by every web worker.
- ``source_status``: what the agent last saw of each log source (failing or
  not, why, since when), for ``pbxfw ips status`` and the web page.
"""

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

#: 64-bit on both engines: SQLite's INTEGER already is (and INTEGER PRIMARY
#: KEY stays its rowid); PostgreSQL's INTEGER is 32-bit, too small for inode
#: numbers, log offsets, counters and the ids a document may carry.
INT = sa.Integer().with_variant(sa.BigInteger(), "postgresql")


def upgrade() -> None:
    op.create_table(
        "revoked_sessions",
        sa.Column("sid", sa.String(64), primary_key=True),
        sa.Column("expires_at", sa.Float, nullable=False),
    )
    with op.batch_alter_table("users") as batch:
        batch.add_column(
            sa.Column("sessions_valid_after", sa.Float, nullable=False, server_default="0")
        )
    op.create_table(
        "login_throttle",
        sa.Column("key", sa.String(300), primary_key=True),
        sa.Column("failures", INT, nullable=False),
        sa.Column("first_failure", sa.Float, nullable=False),
        sa.Column("last_failure", sa.Float, nullable=False),
        sa.Column("locked_until", sa.Float, nullable=False),
    )
    op.create_table(
        "source_status",
        sa.Column("source", sa.Text, primary_key=True),
        sa.Column("jail", sa.String(32), nullable=False),
        sa.Column("error", sa.Text, nullable=False),
        sa.Column("since", sa.Float, nullable=False),
        sa.Column("failures", INT, nullable=False),
        sa.Column("updated_at", sa.Float, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("source_status")
    op.drop_table("login_throttle")
    with op.batch_alter_table("users") as batch:
        batch.drop_column("sessions_valid_after")
    op.drop_table("revoked_sessions")
