"""Engines and migrations.

SQLite is the embedded default. Every connection gets WAL, a busy timeout
and ``BEGIN IMMEDIATE`` for write units of work, so the CLI, the web page and
the agent can write at the same time: a writer waits for the lock instead of
failing half-way with "database is locked" when it upgrades a read lock.

The SQLite file holds the administrators' password hashes, so it is the
owner's alone (0600): pbxfw creates it so, and tightens a file (and its
``-wal``/``-shm`` files) it finds readable by others whenever it opens it.
SQLite gives the ``-wal`` and ``-shm`` files the database file's own mode.

PostgreSQL (``postgresql+psycopg://``, psycopg 3) keeps the same contract:
a write unit of work first takes one transaction-scoped advisory lock, so
writers run one at a time as with ``BEGIN IMMEDIATE`` (each statement of a
READ COMMITTED transaction then sees every write committed before it); a
read unit of work is REPEATABLE READ, one snapshot as SQLite's WAL gives a
reader. Writes never fail with a serialization error that would need a retry.
"""

from __future__ import annotations

import logging
import os
import re
import stat
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, DBAPIError, NoSuchModuleError, OperationalError

from pbxfw.errors import StorageError

__all__ = [
    "DEFAULT_DB",
    "PRIVATE_DIR_MODE",
    "PRIVATE_FILE_MODE",
    "database_url",
    "make_engine",
    "migrate",
    "private_folder",
    "schema_behind",
    "storage_error",
]

log = logging.getLogger(__name__)

#: Where the database lives when neither ``--db`` nor ``PBXFW_DB`` says.
DEFAULT_DB = "var/pbxfw.db"
BUSY_TIMEOUT_MS = 30_000
_MIGRATIONS = Path(__file__).with_name("migrations")
WRITE_OPTION = "pbxfw_write"
#: The database and its -wal/-shm files: read and written by their owner only.
PRIVATE_FILE_MODE = 0o600
#: The state folder (signing key, confirmation state): its owner's only.
PRIVATE_DIR_MODE = 0o700
#: PostgreSQL: the advisory lock every write unit of work holds until it ends
#: (one database-wide writer, as SQLite has; any 64-bit number pbxfw owns).
WRITE_LOCK = 0x7062_7866_7700_0001  # "pbxfw" 00 01
#: PostgreSQL: seconds to wait for a connection before failing (not forever).
CONNECT_TIMEOUT = 10
_DRIVERLESS = ("postgresql://", "postgres://")


def database_url(value: str | None = None) -> str:
    """A SQLAlchemy URL from ``--db`` (a file path or a URL), ``PBXFW_DB``, or the default."""
    value = value or os.environ.get("PBXFW_DB") or DEFAULT_DB
    if "://" in value:
        try:
            make_url(value).port  # noqa: B018 — the port is parsed only when read
        except (ArgumentError, ValueError) as exc:
            # The value may hold a password: never echo it.
            shown = re.sub(r"(//[^/:@]*):[^/@]*@", r"\1:***@", value)
            raise StorageError(f"--db: {shown!r} is not a database URL: {exc}") from None
        if value.startswith(_DRIVERLESS):
            # SQLAlchemy's default driver for these is psycopg2; pbxfw ships psycopg 3.
            return "postgresql+psycopg://" + value.split("://", 1)[1]
        return value
    return f"sqlite:///{Path(value).expanduser().absolute()}"


def make_engine(url: str, *, create_dir: bool = False) -> Engine:
    """An engine for ``url``; SQLite files get WAL, a busy timeout, immediate writes."""
    parsed = make_url(url)
    if parsed.get_backend_name() == "postgresql":
        return _postgresql_engine(url)
    if parsed.get_backend_name() != "sqlite":
        try:
            return create_engine(url, pool_pre_ping=True)
        except (NoSuchModuleError, ImportError, ArgumentError, ValueError) as exc:
            # An unknown dialect or a driver that is not installed: say so,
            # not a traceback (exit 4 like any other unreachable database).
            raise StorageError(
                f"--db: cannot use {parsed.render_as_string(hide_password=True)!r}: {exc}; "
                "give a SQLite file path or a SQLAlchemy URL whose driver is installed"
            ) from None
    path = parsed.database
    if path and path != ":memory:":
        folder = Path(path).parent
        if create_dir:
            folder.mkdir(parents=True, exist_ok=True)
            _create_private(Path(path))
        elif not Path(path).exists():
            raise StorageError(
                f"no database at {path}; run `pbxfw init` first (or pass --db / set PBXFW_DB)"
            )
        for name in (path, f"{path}-wal", f"{path}-shm"):
            _tighten(Path(name), PRIVATE_FILE_MODE)
    engine = create_engine(url, connect_args={"timeout": BUSY_TIMEOUT_MS / 1000})

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Let SQLAlchemy's "begin" event issue BEGIN itself (pysqlite's own
        # implicit BEGIN is deferred and cannot be made IMMEDIATE).
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        _wal(cursor)
        cursor.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(connection: Any) -> None:
        write = connection.get_execution_options().get(WRITE_OPTION, False)
        connection.exec_driver_sql("BEGIN IMMEDIATE" if write else "BEGIN")

    return engine


def _postgresql_engine(url: str) -> Engine:
    """An engine on PostgreSQL: one writer at a time, readers on one snapshot."""
    parsed = make_url(url)
    connect_args: dict[str, Any] = {"application_name": "pbxfw"}
    if "connect_timeout" not in parsed.query:
        connect_args["connect_timeout"] = CONNECT_TIMEOUT
    try:
        engine = create_engine(url, pool_pre_ping=True, connect_args=connect_args)
    except (NoSuchModuleError, ImportError, ArgumentError, ValueError) as exc:
        raise StorageError(
            f"--db: cannot use {parsed.render_as_string(hide_password=True)!r}: {exc}; "
            "PostgreSQL needs psycopg 3: pip install 'psycopg[binary]'"
        ) from None

    @event.listens_for(engine, "begin")
    def _on_begin(connection: Any) -> None:
        # The first statement of the transaction (psycopg begins implicitly).
        if connection.get_execution_options().get(WRITE_OPTION, False):
            # A writer waits for the lock as long as SQLite's busy timeout,
            # then fails (a stuck writer is an error, not a hang).
            connection.exec_driver_sql(
                f"SET LOCAL lock_timeout = {BUSY_TIMEOUT_MS}; "
                f"SELECT pg_advisory_xact_lock({WRITE_LOCK})"
            )
        else:
            connection.exec_driver_sql("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")

    return engine


def _wal(cursor: Any) -> None:
    """Put the database in WAL mode (once per file: a no-op when it is).

    Switching a new file to WAL needs an exclusive lock, and SQLite answers
    "database is locked" at once, without waiting, when another connection
    (a second `pbxfw init` at the same moment) holds one: try again for as
    long as the busy timeout, in bounded steps.
    """
    import sqlite3
    import time

    for _ in range(BUSY_TIMEOUT_MS // 50):
        try:
            cursor.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc):
                raise
            time.sleep(0.05)
    cursor.execute("PRAGMA journal_mode=WAL")  # the last try raises what it raises


def storage_error(exc: DBAPIError) -> StorageError:
    """The StorageError a failed statement means to the user.

    A missing table (SQLite: "no such table"; PostgreSQL: SQLSTATE 42P01) is
    a database that ``pbxfw init`` has not set up (or not upgraded).
    """
    orig = exc.orig
    if "no such table" in str(orig) or getattr(orig, "sqlstate", None) == "42P01":
        return StorageError("the database is not initialised; run `pbxfw init`")
    return StorageError(f"database error: {orig}")


def _create_private(path: Path) -> None:
    """Create an empty database file 0600 before SQLite creates it with 0644.

    SQLite takes an empty file for an empty database; an existing file is
    left as it is (no truncation), so two processes running ``init`` at once
    are harmless.
    """
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_CLOEXEC, PRIVATE_FILE_MODE)
    except OSError as exc:
        raise StorageError(f"cannot create the database {path}: {exc.strerror}") from None
    os.close(fd)


def _tighten(path: Path, mode: int) -> None:
    """Take the group's and others' bits off ``path`` if it has any (owner's bits kept).

    Only what the owner could do; a file of another user or on a read-only
    file system stays as it is (a warning in the log, never an error:
    the database still works).
    """
    try:
        st = path.stat()
    except OSError:
        return
    current = stat.S_IMODE(st.st_mode)
    if not current & ~mode & 0o077:
        return
    try:
        os.chmod(path, current & mode)
    except OSError as exc:
        log.warning("cannot make %s private (mode %o): %s", path, current, exc.strerror)


def private_folder(path: str | os.PathLike[str]) -> Path:
    """``path`` as a folder of its owner's only (0700): created so, or tightened.

    Parents that must be created get the default mode; only the folder itself
    is private. A folder that cannot be created or changed (no permission) is
    left for its first user to report.
    """
    folder = Path(path)
    try:
        folder.mkdir(mode=PRIVATE_DIR_MODE, parents=True, exist_ok=True)
    except OSError as exc:
        log.debug("cannot create %s: %s", folder, exc.strerror)
        return folder
    _tighten(folder, PRIVATE_DIR_MODE)
    return folder


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
    # As a writer (SQLite: BEGIN IMMEDIATE; PostgreSQL: the writers' lock): two
    # `pbxfw init` at once migrate one after the other. A plain BEGIN on
    # SQLite made the second fail with "database is locked" when both tried
    # to upgrade their read lock at once.
    engine = engine.execution_options(**{WRITE_OPTION: True})
    with engine.connect() as connection:
        config.attributes["connection"] = connection
        command.upgrade(config, "head")
        connection.commit()


def schema_behind(engine: Engine) -> str | None:
    """Why the database's schema is older than this pbxfw's migrations, or
    None when it is at the newest one (or at one this pbxfw does not know: a
    newer pbxfw upgraded it, which is logged, not refused).

    Reads ``alembic_version`` only: a role that may not migrate can ask.
    """
    from sqlalchemy import text

    # Alembic announces its plugins at INFO when it loads: not news in an agent's log.
    quiet = logging.getLogger("alembic")
    level = quiet.level
    quiet.setLevel(logging.WARNING)
    try:
        from alembic.script import ScriptDirectory

        script = ScriptDirectory.from_config(_alembic_config())
        newest = script.get_current_head()
    finally:
        quiet.setLevel(level)
    try:
        with engine.connect() as connection:
            current = connection.scalar(text("SELECT version_num FROM alembic_version"))
    except OperationalError as exc:
        if "no such table" in str(exc.orig):  # SQLite: never initialised
            raise storage_error(exc) from None
        # Unreachable: not refused; the agent starts from its kept
        # configuration and reports the outage (docs/fleet-outage.md).
        log.debug("schema version not read: %s", exc.orig)
        return None
    except DBAPIError as exc:
        raise storage_error(exc) from None
    if current == newest:
        return None
    if current is None:
        return "the database is not initialised; run `pbxfw init` (as the database's owner)"
    known = {s.revision for s in script.walk_revisions()}
    if current not in known:
        log.warning("the database's schema %s is newer than this pbxfw's %s", current, newest)
        return None
    return (
        f"the database's schema is at revision {current}, this pbxfw needs {newest}: "
        "run `pbxfw init` as the database's owner first (the agent never migrates)"
    )
