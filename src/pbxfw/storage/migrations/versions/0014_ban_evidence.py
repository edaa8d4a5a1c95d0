"""The evidence behind a ban, and who made an administrator's ban.

Revision ID: 0014
Revises: 0013

Issue 19 (docs/observability.md, "Evidence"):

- ``ban_evidence``: one row per ban made by a jail: the log lines that made
  it and the rule that fired (domain.evidence ``pack``: compressed JSON),
  keyed by the ban's id. ``ON DELETE CASCADE``: a ban removed (``bans rm``,
  lifted, replaced, pruned) takes its evidence with it, whatever code path
  removes it, on SQLite (``PRAGMA foreign_keys=ON``, storage.db) and
  PostgreSQL alike. ``created_at`` (indexed) prunes it after
  ``ips_evidence_days``. A later migration that recreates ``bans`` on SQLite
  (a batch "move and copy") must copy ``ban_evidence`` aside first: dropping
  ``bans`` deletes the evidence through the cascade.
- ``bans.who``: who made an administrator's ban (``cli:USER``,
  ``web:ADMIN``, ``rest:ADMIN``); NULL for a jail's and for bans stored
  before (their maker was not recorded).
"""

import sqlalchemy as sa
from alembic import op

revision = "0014"
down_revision = "0013"
branch_labels = None
depends_on = None

_INT64 = sa.Integer().with_variant(sa.BigInteger(), "postgresql")


def upgrade() -> None:
    # A plain ALTER TABLE … ADD COLUMN on both engines (no table copy).
    op.add_column("bans", sa.Column("who", sa.String(160), nullable=True))
    op.create_table(
        "ban_evidence",
        sa.Column(
            "ban_id",
            _INT64,
            sa.ForeignKey("bans.id", ondelete="CASCADE"),
            primary_key=True,
        ),
        sa.Column("created_at", sa.Float(), nullable=False),
        sa.Column("data", sa.LargeBinary(), nullable=False),
    )
    op.create_index("ix_ban_evidence_created_at", "ban_evidence", ["created_at"])


def downgrade() -> None:
    op.drop_index("ix_ban_evidence_created_at", table_name="ban_evidence")
    op.drop_table("ban_evidence")
    with op.batch_alter_table("bans") as batch:
        batch.drop_column("who")
