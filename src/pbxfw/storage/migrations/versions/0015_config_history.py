"""The history of configuration changes (issue 19, docs/observability.md "History").

Revision ID: 0015
Revises: 0014

``config_history``: one row per change. ``kind`` ``config``: a revision of
one site's configuration, with who made it (``actor``), through what
(``via``: cli, rest, web, import, fleet, system), from where (``client``),
when (``at``, epoch seconds), a one-line ``summary`` and the whole
configuration document after the change (``document``: JSON, compressed with
zlib), so that any revision can be shown as a diff against the one before it
and restored. ``kind`` ``ban``: a ban made or lifted by an administrator
(``site`` ``''``, the fleet's: bans are not configuration), without a
document. ``rev`` numbers every entry of the database; the history of each
site keeps its newest 1,000 entries of each kind (storage/history.py).

Existing databases start with an empty history: the first change after the
upgrade also records the configuration as it was before it.
"""

import sqlalchemy as sa
from alembic import op

revision = "0015"
down_revision = "0014"
branch_labels = None
depends_on = None

INT = sa.Integer().with_variant(sa.BigInteger(), "postgresql")


def upgrade() -> None:
    op.create_table(
        "config_history",
        sa.Column("rev", INT, primary_key=True),
        sa.Column("site", sa.String(64), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("at", sa.Float(), nullable=False),
        sa.Column("actor", sa.String(160), nullable=False),
        sa.Column("via", sa.String(16), nullable=False),
        sa.Column("client", sa.String(64), nullable=False),
        sa.Column("summary", sa.Text(), nullable=False),
        sa.Column("document", sa.LargeBinary(), nullable=True),
    )
    op.create_index("ix_config_history_site_kind_rev", "config_history", ["site", "kind", "rev"])


def downgrade() -> None:
    op.drop_index("ix_config_history_site_kind_rev", "config_history")
    op.drop_table("config_history")
