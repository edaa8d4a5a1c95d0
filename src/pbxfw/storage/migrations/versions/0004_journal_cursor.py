"""The journal's cursor: where the agent stopped reading a ``journal:`` log source.

Revision ID: 0004
Revises: 0003

``log_offsets.journal_cursor``: for a log setting that names journal entries
(``journal:ssh.service``, domain.logsource) the row of that source keeps
the cursor of the last entry read (``inode`` and ``offset`` are 0); NULL
for a file. A restarted agent continues after it (journalctl
``--after-cursor``). Nullable, so the rows of files stay as they are.
"""

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("log_offsets") as batch:
        batch.add_column(sa.Column("journal_cursor", sa.Text, nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("log_offsets") as batch:
        batch.drop_column("journal_cursor")
