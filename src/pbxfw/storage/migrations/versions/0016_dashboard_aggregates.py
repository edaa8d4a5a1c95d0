"""Dashboard aggregates: failures per hour, attackers per day, failure totals (issue 19).

Revision ID: 0016
Revises: 0015

The dashboard never scans raw events on a page view: the agent adds what it
recognised to these tables in its periodic counter flush (once a second at
most, never per line; agent.tally), and the page sums a few hundred rows.

- ``attack_hours``: failures per node, hour (epoch seconds of the hour's
  start, by the log's own time stamp), jail and event; the dashboard's
  "attacks per hour" charts (24 h and 7 days). Rows older than 8 days are
  pruned by the flush that writes.
- ``attack_sources``: failures per node, day (epoch seconds of the UTC
  day's start) and source address, with the jail last seen; "top attacking
  addresses" over 7 days. Pruned like ``attack_hours``.
- ``failure_totals``: failures per node, jail and event since the node
  first counted (never pruned: a Prometheus counter,
  ``pbxfw_failures_total``), and ``bans_made`` per node, jail and origin
  in ``ban_totals`` (``pbxfw_bans_made_total``).
- ``drop_counters``: packets and bytes the node's table dropped per reason
  (``jail``, ``default_deny``, ``rate_limit``, …) and jail, as its nft
  counters last read (the agent reads them every 10 s at most and replaces
  its rows); the dashboard's "drops per reason" and the web server's
  ``pbxfw_dropped_*_total``.
"""

import sqlalchemy as sa
from alembic import op

revision = "0016"
down_revision = "0015"
branch_labels = None
depends_on = None

_INT64 = sa.Integer().with_variant(sa.BigInteger(), "postgresql")


def upgrade() -> None:
    op.create_table(
        "attack_hours",
        sa.Column("node", sa.String(63), nullable=False),
        sa.Column("hour", _INT64, nullable=False),
        sa.Column("jail", sa.String(32), nullable=False),
        sa.Column("event", sa.String(64), nullable=False),
        sa.Column("failures", _INT64, nullable=False),
        sa.PrimaryKeyConstraint("node", "hour", "jail", "event"),
    )
    op.create_index("ix_attack_hours_hour", "attack_hours", ["hour"])
    op.create_table(
        "attack_sources",
        sa.Column("node", sa.String(63), nullable=False),
        sa.Column("day", _INT64, nullable=False),
        sa.Column("address", sa.String(64), nullable=False),
        sa.Column("jail", sa.String(32), nullable=False),
        sa.Column("failures", _INT64, nullable=False),
        sa.PrimaryKeyConstraint("node", "day", "address"),
    )
    op.create_index("ix_attack_sources_day", "attack_sources", ["day"])
    op.create_table(
        "failure_totals",
        sa.Column("node", sa.String(63), nullable=False),
        sa.Column("jail", sa.String(32), nullable=False),
        sa.Column("event", sa.String(64), nullable=False),
        sa.Column("failures", _INT64, nullable=False),
        sa.PrimaryKeyConstraint("node", "jail", "event"),
    )
    op.create_table(
        "ban_totals",
        sa.Column("node", sa.String(63), nullable=False),
        sa.Column("jail", sa.String(32), nullable=False),
        sa.Column("origin", sa.String(96), nullable=False),
        sa.Column("bans", _INT64, nullable=False),
        sa.PrimaryKeyConstraint("node", "jail", "origin"),
    )
    op.create_table(
        "drop_counters",
        sa.Column("node", sa.String(63), nullable=False),
        sa.Column("reason", sa.String(32), nullable=False),
        sa.Column("jail", sa.String(32), nullable=False),
        sa.Column("packets", _INT64, nullable=False),
        sa.Column("bytes", _INT64, nullable=False),
        sa.Column("updated_at", sa.Float, nullable=False),
        sa.PrimaryKeyConstraint("node", "reason", "jail"),
    )


def downgrade() -> None:
    op.drop_table("drop_counters")
    op.drop_table("ban_totals")
    op.drop_table("failure_totals")
    op.drop_index("ix_attack_sources_day", "attack_sources")
    op.drop_table("attack_sources")
    op.drop_index("ix_attack_hours_hour", "attack_hours")
    op.drop_table("attack_hours")
