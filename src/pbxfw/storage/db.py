"""Engines and migrations.

SQLite is the embedded default. Every connection gets WAL, a busy timeout
and ``BEGIN IMMEDIATE`` for write units of work, so the CLI, the web page and
the agent can write at the same time: a writer waits for the lock instead of
failing half-way with "database is locked" when it upgrades a read lock.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

from pbxfw.errors import StorageError

__all__ = [
    "DEFAULT_DB",
    "database_url",
    "make_engine",
    "migrate",
]

#: Where the database lives when neither ``--db`` nor ``PBXFW_DB`` says.
DEFAULT_DB = "var/pbxfw.db"
BUSY_TIMEOUT_MS = 30_000
_MIGRATIONS = Path(__file__).with_name("migrations")
WRITE_OPTION = "pbxfw_write"


def database_url(value: str | None = None) -> str:
    """A SQLAlchemy URL from ``--db`` (a file path or a URL), ``PBXFW_DB``, or the default."""
    value = value or os.environ.get("PBXFW_DB") or DEFAULT_DB
    if "://" in value:
        try:
            make_url(value)
        except ArgumentError as exc:
            raise StorageError(f"--db: {value!r} is not a database URL: {exc}") from None
        return value
    return f"sqlite:///{Path(value).expanduser().absolute()}"


def make_engine(url: str, *, create_dir: bool = False) -> Engine:
    """An engine for ``url``; SQLite files get WAL, a busy timeout, immediate writes."""
    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite":
        return create_engine(url, pool_pre_ping=True)
    path = parsed.database
    if path and path != ":memory:":
        folder = Path(path).parent
        if create_dir:
            folder.mkdir(parents=True, exist_ok=True)
        elif not Path(path).exists():
            raise StorageError(
                f"no database at {path}; run `pbxfw init` first (or pass --db / set PBXFW_DB)"
            )
    engine = create_engine(url, connect_args={"timeout": BUSY_TIMEOUT_MS / 1000})

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Let SQLAlchemy's "begin" event issue BEGIN itself (pysqlite's own
        # implicit BEGIN is deferred and cannot be made IMMEDIATE).
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(connection: Any) -> None:
        write = connection.get_execution_options().get(WRITE_OPTION, False)
        connection.exec_driver_sql("BEGIN IMMEDIATE" if write else "BEGIN")

    return engine


def _alembic_config() -> Any:
    # Alembic is imported here, not at the top: only `init` migrates, and
    # every other command should not pay for importing it.
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(_MIGRATIONS))
    return config


def migrate(engine: Engine) -> None:
    """Create or upgrade the schema to the newest migration (idempotent)."""
    from alembic import command

    config = _alembic_config()
    with engine.connect() as connection:
        config.attributes["connection"] = connection
        command.upgrade(config, "head")
        connection.commit()
