"""Dashboard: the user names and extensions attackers tried (issue 19).

Revision ID: 0018
Revises: 0017

- ``attack_users``: failures per node, hour (epoch seconds of the hour's
  start, by the log's own time stamp), jail and account tried (``account``:
  the user name or extension as the daemon wrote it, at most 64
  characters); the dashboard's "top user names tried" and "top extensions
  and numbers tried" (24 h and 7 days). The agent adds its tallies in the
  same flush as migration 0016's rows; each (node, hour, jail) keeps at most
  the 100 accounts with most failures (a scanner trying 100,000 names a day
  leaves at most 2,400 rows per jail and day), and rows older than 8 days
  are pruned with the others.
"""

import sqlalchemy as sa
from alembic import op

revision = "0018"
down_revision = "0017"
branch_labels = None
depends_on = None

_INT64 = sa.Integer().with_variant(sa.BigInteger(), "postgresql")


def upgrade() -> None:
    op.create_table(
        "attack_users",
        sa.Column("node", sa.String(63), nullable=False),
        sa.Column("hour", _INT64, nullable=False),
        sa.Column("jail", sa.String(32), nullable=False),
        sa.Column("account", sa.String(64), nullable=False),
        sa.Column("failures", _INT64, nullable=False),
        sa.PrimaryKeyConstraint("node", "hour", "jail", "account"),
    )
    op.create_index("ix_attack_users_hour", "attack_users", ["hour"])


def downgrade() -> None:
    op.drop_index("ix_attack_users_hour", "attack_users")
    op.drop_table("attack_users")
