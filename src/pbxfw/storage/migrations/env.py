"""Alembic environment: runs on the connection that pbxfw hands over."""

from __future__ import annotations

from alembic import context

from pbxfw.storage.models import Base

connection = context.config.attributes["connection"]
context.configure(
    connection=connection,
    target_metadata=Base.metadata,
    render_as_batch=True,  # SQLite cannot ALTER most things; batch mode copies tables
    # One transaction for the whole upgrade, on SQLite too (Alembic's default
    # there commits after each migration): two `pbxfw init` at once must not
    # interleave, the second taking the lock between two steps of the first
    # and running a step the first then runs again on a changed table.
    transactional_ddl=True,
)
with context.begin_transaction():
    context.run_migrations()
