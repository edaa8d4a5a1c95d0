"""Bans: their origin, the node and site that detected them, and the revision that wrote them.

Revision ID: 0011
Revises: 0010

Shared bans (issue 16, docs/fleet-bans.md):

- ``bans.origin``: what made the ban, in the vocabulary of DESIGN §7:
  ``jail:NAME`` (detected by a node's jail) or ``manual`` (an
  administrator: ``bans add``, the web page, REST, ``bans import``).
  Existing rows: ``manual`` for the jail ``manual`` (only an administrator
  bans in it), else ``jail:<jail>``.
- ``bans.node`` / ``bans.site``: the node that detected the ban and its
  site; NULL for an administrator's ban (enforced at every node). Existing
  rows made by a jail get the site ``default`` (a single PBX's; which
  site detected them was not recorded) and no node (their node was not recorded).
- ``bans.revision``: the ``bans_revision`` value of the commit that last
  wrote the row (indexed), so an agent reads only the bans written since
  the revision it has. Existing rows: the current ``bans_revision``.

``meta.bans_removed_revision`` (no schema change) counts the commits that
removed bans; an agent that sees it move reads every ban again.
"""

import sqlalchemy as sa
from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None

_INT64 = sa.Integer().with_variant(sa.BigInteger(), "postgresql")


def upgrade() -> None:
    with op.batch_alter_table("bans") as batch:
        batch.add_column(sa.Column("origin", sa.String(96), nullable=False, server_default=""))
        batch.add_column(sa.Column("node", sa.String(63), nullable=True))
        batch.add_column(sa.Column("site", sa.String(64), nullable=True))
        batch.add_column(sa.Column("revision", _INT64, nullable=False, server_default="0"))
    bans = sa.table(
        "bans",
        sa.column("jail", sa.String),
        sa.column("origin", sa.String),
        sa.column("site", sa.String),
        sa.column("revision", _INT64),
    )
    op.execute(bans.update().where(bans.c.jail == "manual").values(origin="manual"))
    op.execute(
        bans.update()
        .where(bans.c.jail != "manual")
        .values(origin=sa.literal("jail:") + bans.c.jail, site="default")
    )
    meta = sa.table("meta", sa.column("key", sa.String), sa.column("value", sa.String))
    current = op.get_bind().scalar(sa.select(meta.c.value).where(meta.c.key == "bans_revision"))
    op.execute(bans.update().values(revision=int(current or 0)))
    with op.batch_alter_table("bans") as batch:
        # The defaults only filled the existing rows; the repository writes every value.
        batch.alter_column("origin", server_default=None)
        batch.alter_column("revision", server_default=None)
        batch.create_index("ix_bans_revision", ["revision"])


def downgrade() -> None:
    with op.batch_alter_table("bans") as batch:
        batch.drop_index("ix_bans_revision")
        batch.drop_column("revision")
        batch.drop_column("site")
        batch.drop_column("node")
        batch.drop_column("origin")
    meta = sa.table("meta", sa.column("key", sa.String))
    op.execute(meta.delete().where(meta.c.key == "bans_removed_revision"))
