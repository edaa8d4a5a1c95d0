"""Blocklist feeds (issue 17).

Revision ID: 0012
Revises: 0011

``feeds``: one row per feed, part of a site's configuration (``site``,
``default`` on a single PBX): name, URL, format, period in seconds, scope
(``all`` or comma-separated service keys), headers (a JSON list of
``[name, value]``), and ``update_requested`` (``feed update``: the agents
fetch the feed at their next tick).

``feed_status``: per node and feed, what its agent last did: fetch times,
the next fetch, the validators of the last answer (ETag, Last-Modified),
the entries loaded, the refused ones by reason (JSON), the last error and
whether a list that shrank by more than 90 % is held back. The list itself
is kept by the agent in its state folder (docs/countries-and-feeds.md).
"""

import sqlalchemy as sa
from alembic import op

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None

INT = sa.Integer().with_variant(sa.BigInteger(), "postgresql")


def upgrade() -> None:
    op.create_table(
        "feeds",
        sa.Column("id", INT, primary_key=True),
        sa.Column("site", sa.String(64), nullable=False, server_default="default"),
        sa.Column("name", sa.String(32), nullable=False),
        sa.Column("url", sa.Text(), nullable=False),
        sa.Column("format", sa.String(16), nullable=False),
        sa.Column("every", INT, nullable=False),
        sa.Column("scope", sa.Text(), nullable=False),
        sa.Column("headers", sa.Text(), nullable=False),
        sa.Column("update_requested", sa.Float(), nullable=True),
        sa.UniqueConstraint("site", "name", name="uq_feeds_site_name"),
    )
    op.create_table(
        "feed_status",
        sa.Column("node", sa.String(63), primary_key=True),
        sa.Column("feed", sa.String(32), primary_key=True),
        sa.Column("last_fetch", sa.Float(), nullable=True),
        sa.Column("last_success", sa.Float(), nullable=True),
        sa.Column("next_fetch", sa.Float(), nullable=True),
        sa.Column("etag", sa.Text(), nullable=False),
        sa.Column("last_modified", sa.Text(), nullable=False),
        sa.Column("entries", INT, nullable=False),
        sa.Column("refused", sa.Text(), nullable=False),
        sa.Column("error", sa.Text(), nullable=False),
        sa.Column("held_back", sa.Boolean(), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("feed_status")
    op.drop_table("feeds")
