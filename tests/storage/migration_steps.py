"""Shared steps of the per-migration tests: a real SQLite file brought to an
old revision with Alembic, and what the newest revision is."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import sqlalchemy as sa
from alembic import command
from alembic.config import Config
from alembic.script import ScriptDirectory

from pbxfw.storage.db import _alembic_config, make_engine, migrate


def revisions() -> list[str]:
    """Every revision Alembic knows, newest first."""
    return [s.revision for s in ScriptDirectory.from_config(_alembic_config()).walk_revisions()]


def head() -> str:
    """The newest revision (what ``pbxfw init`` upgrades to)."""
    newest = ScriptDirectory.from_config(_alembic_config()).get_current_head()
    assert newest is not None
    return newest


def stored_version(connection: sa.Connection) -> str:
    """The revision a database says it is at."""
    return str(connection.execute(sa.text("SELECT version_num FROM alembic_version")).scalar_one())


def database_at(tmp_path: Path, revision: str, fill: Callable[[sa.Connection], None]) -> str:
    """The URL of a new SQLite file upgraded to ``revision`` only, then given
    rows by ``fill(connection)`` (committed), as that version stored them."""
    url = f"sqlite:///{tmp_path / 'old.db'}"
    engine = make_engine(url, create_dir=True)
    try:
        config = _alembic_config()
        with engine.connect() as connection:
            config.attributes["connection"] = connection
            command.upgrade(config, revision)
            fill(connection)
            connection.commit()
    finally:
        engine.dispose()
    return url


@contextmanager
def downgraded(tmp_path: Path, revision: str) -> Iterator[tuple[sa.Connection, Config]]:
    """A new SQLite file migrated to the newest revision, then downgraded to
    ``revision``: yields the connection and the Alembic config bound to it."""
    engine = make_engine(f"sqlite:///{tmp_path / 'down.db'}", create_dir=True)
    try:
        migrate(engine)
        config = _alembic_config()
        with engine.connect() as connection:
            config.attributes["connection"] = connection
            command.downgrade(config, revision)
            connection.commit()
            yield connection, config
    finally:
        engine.dispose()
