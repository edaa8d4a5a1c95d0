"""A real PostgreSQL server for the tests: ``initdb`` into a temporary folder, ``pg_ctl``.

Debian's ``postgresql`` package (binaries under /usr/lib/postgresql/N/bin).
The server listens on a unix socket in its own folder only (no TCP), so
parallel test runs never collide and processes in other network namespaces
(the agent tests) reach it through the file system. As root it runs as the
``postgres`` user (``initdb`` refuses root), else as the current user.

Each test gets a database of its own, cloned from a template migrated once
per session (``CREATE DATABASE … TEMPLATE``: milliseconds), and dropped after.
"""

from __future__ import annotations

import itertools
import os
import pwd
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

__all__ = ["PgServer", "pg_binaries", "pg_unavailable", "running_server"]

#: The template every test database is cloned from (migrated to head once).
TEMPLATE = "pbxfw_template"


def pg_binaries() -> Path | None:
    """The newest installed PostgreSQL's bin folder, or None."""
    root = Path("/usr/lib/postgresql")
    versions = sorted(
        (p for p in root.glob("*/bin") if (p / "pg_ctl").exists()),
        key=lambda p: int(p.parent.name) if p.parent.name.isdigit() else 0,
    )
    return versions[-1] if versions else None


def pg_unavailable() -> str | None:
    """Why no test server can start here, or None when it can."""
    if pg_binaries() is None:
        return "PostgreSQL is not installed (apt-get install postgresql)"
    try:
        import psycopg  # noqa: F401
    except ImportError:
        return "psycopg is not installed (pip install 'psycopg[binary]')"
    if os.geteuid() == 0:
        try:
            pwd.getpwnam("postgres")
        except KeyError:
            return "running as root and there is no postgres user to run the server"
    return None


class PgServer:
    """One PostgreSQL cluster in a temporary folder; ``stop()`` removes it all."""

    def __init__(self) -> None:
        binaries = pg_binaries()
        assert binaries is not None, pg_unavailable()
        self.bin = binaries
        # Short: a unix socket path must fit in 107 bytes.
        self.folder = Path(tempfile.mkdtemp(prefix="pbxfw-pg-"))
        self.data = self.folder / "data"
        self.log = self.folder / "server.log"
        self._as: list[str] = []
        if os.geteuid() == 0:
            user = pwd.getpwnam("postgres")
            os.chown(self.folder, user.pw_uid, user.pw_gid)
            self._as = ["runuser", "-u", "postgres", "--"]
        self._names = itertools.count(1)
        self._admin: object | None = None
        #: the server is started (False after :meth:`pause`)
        self.running = False
        self._run(
            "initdb",
            "-D",
            str(self.data),
            "-U",
            "postgres",
            "--auth=trust",
            "--encoding=UTF8",
            "--locale=C.UTF-8",
            "--no-sync",
            "--no-instructions",
        )
        self.start()

    def start(self) -> None:
        """Start the server (``__init__`` does; again after :meth:`pause`)."""
        options = " ".join(
            [
                "-c listen_addresses=''",
                f"-c unix_socket_directories={self.folder}",
                # Test data is thrown away: no durability needed, speed is.
                "-c fsync=off",
                "-c synchronous_commit=off",
                "-c full_page_writes=off",
                "-c max_connections=200",
            ]
        )
        self._run(
            "pg_ctl",
            "start",
            "-w",
            "-t",
            "60",
            "-D",
            str(self.data),
            "-l",
            str(self.log),
            "-o",
            options,
        )
        self.running = True

    def pause(self) -> None:
        """Stop the server, keeping its data (a database outage: ``pg_ctl stop -m
        fast`` ends every connection); :meth:`start` brings it back."""
        self._close_admin()
        self._run("pg_ctl", "stop", "-w", "-t", "60", "-m", "fast", "-D", str(self.data))
        self.running = False

    def _run(self, program: str, *args: str) -> None:
        result = subprocess.run(
            [*self._as, str(self.bin / program), *args],
            capture_output=True,
            text=True,
            timeout=120,
            cwd=self.folder,
        )
        if result.returncode != 0:
            log = self.log.read_text(errors="replace") if self.log.exists() else ""
            raise RuntimeError(f"{program} failed: {result.stderr}{result.stdout}\n{log}")

    def url(self, database: str, driver: str = "postgresql+psycopg") -> str:
        """A SQLAlchemy URL of ``database`` on this server (unix socket, user postgres)."""
        return f"{driver}://postgres@/{database}?host={self.folder}"

    def _execute(self, sql: str) -> None:
        import psycopg

        if self._admin is None:
            self._admin = psycopg.connect(
                dbname="postgres", user="postgres", host=str(self.folder), autocommit=True
            )
        assert isinstance(self._admin, psycopg.Connection)
        self._admin.execute(sql)  # type: ignore[arg-type]  # test-made names only

    def create_database(self, template: str | None = TEMPLATE) -> str:
        """A new database (a copy of ``template``; None: empty); returns its name."""
        name = f"t{os.getpid()}_{next(self._names)}"
        self._execute(f'CREATE DATABASE "{name}" TEMPLATE "{template or "template0"}"')
        return name

    def create_template(self) -> None:
        """Create the template database, migrated to the newest schema."""
        from pbxfw.storage.repository import Store

        self._execute(f'CREATE DATABASE "{TEMPLATE}" TEMPLATE template0')
        Store.open(self.url(TEMPLATE), create=True).close()

    def drop_database(self, name: str) -> None:
        """Drop ``name``, ending any connection a test left open."""
        self._execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    def _close_admin(self) -> None:
        if self._admin is not None:
            self._admin.close()  # type: ignore[attr-defined]
            self._admin = None

    def stop(self) -> None:
        self._close_admin()
        try:
            self._run("pg_ctl", "stop", "-w", "-t", "60", "-m", "fast", "-D", str(self.data))
        finally:
            shutil.rmtree(self.folder, ignore_errors=True)


@contextmanager
def running_server() -> Iterator[PgServer]:
    """A started server with the migrated template; stopped and removed afterwards.

    In a test, skipped (a failure under CI=true) when none can start here.
    """
    reason = pg_unavailable()
    if reason is not None:
        import pytest

        pytest.skip(reason)
    server = PgServer()
    try:
        server.create_template()
        yield server
    finally:
        server.stop()
