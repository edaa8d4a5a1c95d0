"""Scanner fingerprints (issue 18): each site's edits of the shipped list.

Revision ID: 0013
Revises: 0012

``fingerprint_edits``: one row per edit of a site's fingerprint list
(``site``, ``default`` on a single PBX; docs/fleet-sites.md): a pattern the
administrator added (``disabled`` false), or a shipped pattern switched off
(``disabled`` true). The shipped patterns themselves are not stored
(``pbxfw.domain.fingerprints.DEFAULT_FINGERPRINTS``), so a new site has them
all and a later pbxfw that ships a new pattern gives it to every site.
``header`` is the canonical header name, ``pattern`` the text as typed;
(site, header, folded pattern) is unique.
"""

import sqlalchemy as sa
from alembic import op

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None

INT = sa.Integer().with_variant(sa.BigInteger(), "postgresql")


def upgrade() -> None:
    op.create_table(
        "fingerprint_edits",
        sa.Column("id", INT, primary_key=True),
        sa.Column("site", sa.String(64), nullable=False, server_default="default"),
        sa.Column("header", sa.String(64), nullable=False),
        sa.Column("pattern", sa.String(128), nullable=False),
        sa.Column("folded", sa.String(128), nullable=False),
        sa.Column("disabled", sa.Boolean(), nullable=False),
        sa.UniqueConstraint("site", "header", "folded", name="uq_fingerprint_edits_key"),
    )


def downgrade() -> None:
    op.drop_table("fingerprint_edits")
