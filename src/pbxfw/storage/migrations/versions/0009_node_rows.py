"""Node-owned rows: each agent's log positions, source health and counters (issue 16).

Revision ID: 0009
Revises: 0007

(There is no 0008: the number was given to work that landed later, as 0011;
revision ids are names, and the chain is 0007 → 0009 → 0010 → 0011.)

``log_offsets`` (keyed by path), ``source_status`` (keyed by source) and
``ips_counters`` (keyed by jail) were one row per key for the whole
database, so two PBXs reading /var/log/asterisk/full on one PostgreSQL
overwrote each other's position. Each gains ``node`` (the agent's node
name), part of its primary key. Rows stored before this migration get the
empty node ``''``: the first agent that starts takes them over
(usecases.ips_state ``adopt_unowned``), so an upgraded single PBX keeps its
positions and counters (docs/decisions.md, "Node-owned rows").

Downgrade keeps one row per old key: the newest position and source
status, the counters summed over the nodes.
"""

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0007"
branch_labels = None
depends_on = None

#: table → the column that was its whole key
_KEYS = {"log_offsets": "path", "source_status": "source", "ips_counters": "jail"}
_COUNTERS = ("lines", "failures", "bans", "whitelisted")


_INT64 = sa.Integer().with_variant(sa.BigInteger(), "postgresql")


def _columns(table: str) -> list[sa.Column[object]]:
    """``table``'s columns other than ``node`` and its key, as 0002-0004 made them."""
    if table == "log_offsets":
        return [
            sa.Column("inode", _INT64, nullable=False),
            sa.Column("offset", _INT64, nullable=False),
            sa.Column("updated_at", sa.Float, nullable=False),
            sa.Column("journal_cursor", sa.Text, nullable=True),
        ]
    if table == "source_status":
        return [
            sa.Column("jail", sa.String(32), nullable=False),
            sa.Column("error", sa.Text, nullable=False),
            sa.Column("since", sa.Float, nullable=False),
            sa.Column("failures", _INT64, nullable=False),
            sa.Column("updated_at", sa.Float, nullable=False),
        ]
    return [sa.Column(c, _INT64, nullable=False) for c in _COUNTERS]


_KEY_TYPES = {"path": sa.Text, "source": sa.Text, "jail": lambda: sa.String(32)}


def _node_column() -> sa.Column[str]:
    return sa.Column("node", sa.String(63), nullable=False, server_default="")


def _set_key(table: str, with_node: bool) -> None:
    """Make (node, key) or (key) the primary key of ``table``; without the
    node, the column goes too. PostgreSQL: in place; SQLite cannot change a
    key, so the table is copied into the shape given here (``copy_from``)."""
    key = _KEYS[table]
    if op.get_bind().dialect.name == "sqlite":
        shape = sa.Table(
            table,
            sa.MetaData(),
            *([_node_column()] if with_node else []),
            sa.Column(key, _KEY_TYPES[key](), nullable=False),
            *_columns(table),
            sa.PrimaryKeyConstraint(*(["node"] if with_node else []), key),
        )
        with op.batch_alter_table(table, recreate="always", copy_from=shape):
            pass
        return
    op.drop_constraint(f"{table}_pkey", table, type_="primary")
    op.create_primary_key(f"{table}_pkey", table, ["node", key] if with_node else [key])
    if not with_node:
        op.drop_column(table, "node")


def upgrade() -> None:
    for table in _KEYS:
        op.add_column(table, _node_column())
        _set_key(table, with_node=True)


def downgrade() -> None:
    # One row per old key before the key shrinks back.
    for table, key, newest in (
        ("log_offsets", "path", "updated_at"),
        ("source_status", "source", "updated_at"),
    ):
        op.execute(
            f"DELETE FROM {table} WHERE EXISTS (SELECT 1 FROM {table} o "
            f"WHERE o.{key} = {table}.{key} AND (o.{newest} > {table}.{newest} "
            f"OR (o.{newest} = {table}.{newest} AND o.node < {table}.node)))"
        )
    sums = ", ".join(
        f"{c} = (SELECT SUM(s.{c}) FROM ips_counters s WHERE s.jail = ips_counters.jail)"
        for c in _COUNTERS
    )
    first = "(SELECT MIN(s.node) FROM ips_counters s WHERE s.jail = ips_counters.jail)"
    op.execute(f"UPDATE ips_counters SET {sums} WHERE node = {first}")
    op.execute(f"DELETE FROM ips_counters WHERE node <> {first}")
    for table in _KEYS:
        _set_key(table, with_node=False)
