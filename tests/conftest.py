"""Shared fixtures; and under CI=true a skipped test fails the run.

A green CI run must mean the kernel, database and browser tests really ran,
so a skip (missing root, nft, chromium, PostgreSQL…) is reported and turned
into a failure when the environment variable CI is "true".

Both engines: a test under one of :data:`BOTH_ENGINES` that uses a database
(the ``db_url`` fixture, or ``svc``, ``cli``, ``store``… built on it) runs
twice, ``[sqlite]`` and ``[postgresql]``; a real PostgreSQL server is started
once per session (tests/pgserver.py) and each test gets a database of its
own. A test that only makes sense on SQLite (file modes, SQLite's own fast
paths) is marked ``sqlite_only``.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from pbxfw.cli import app
from pbxfw.storage.db import database_url
from pbxfw.storage.repository import Store
from pbxfw.usecases import ConfigService
from tests.helpers import Cli, CliResult
from tests.pgserver import PgServer, running_server

IN_CI = os.environ.get("CI", "").lower() == "true"
_skipped: list[str] = []


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    if report.skipped and not hasattr(report, "wasxfail"):
        _skipped.append(report.nodeid)


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    if IN_CI and _skipped and exitstatus == 0:
        session.exitstatus = 1


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if IN_CI and _skipped:
        terminalreporter.write_line(
            f"CI=true: {len(_skipped)} skipped test(s) count as failures:", red=True
        )
        for nodeid in _skipped:
            terminalreporter.write_line(f"  {nodeid}", red=True)


#: The tests (path prefixes from the repository root) that run on both engines.
BOTH_ENGINES = ("tests/storage/", "tests/usecases/", "tests/web/test_api", "tests/agent/")
ENGINES = ("sqlite", "postgresql")
_ROOT = Path(__file__).resolve().parent.parent


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "engine" not in metafunc.fixturenames:
        return
    where = metafunc.definition.path.resolve().relative_to(_ROOT).as_posix()
    if where.startswith(BOTH_ENGINES) and not metafunc.definition.get_closest_marker("sqlite_only"):
        metafunc.parametrize("engine", ENGINES, indirect=True)


@pytest.fixture
def engine(request: pytest.FixtureRequest) -> str:
    """``sqlite`` or ``postgresql``: the engine of this test's database."""
    return str(getattr(request, "param", "sqlite"))


@pytest.fixture(scope="session")
def pg_server() -> Iterator[PgServer]:
    """A real PostgreSQL server for the whole session (unix socket only)."""
    with running_server() as server:  # skipped (CI=true: failed) without PostgreSQL
        yield server


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return tmp_path / "pbxfw.db"


@pytest.fixture
def db_url(engine: str, db_path: Path, request: pytest.FixtureRequest) -> Iterator[str]:
    """The URL of this test's fresh database: the ``db_path`` file, or a new
    PostgreSQL database (migrated, not initialised), dropped afterwards."""
    if engine == "sqlite":
        yield database_url(str(db_path))
        return
    server: PgServer = request.getfixturevalue("pg_server")
    name = server.create_database()
    yield server.url(name)
    server.drop_database(name)


@pytest.fixture
def state_dir(tmp_path: Path) -> Path:
    """The state folder the CLI uses beside ``db_path`` (by default, on SQLite)."""
    return tmp_path / "state"


@pytest.fixture
def svc(db_url: str) -> Iterator[ConfigService]:
    """An initialised ConfigService on a fresh database."""
    service = ConfigService(Store.open(db_url, create=True))
    service.init()
    yield service
    service.store.close()


@pytest.fixture
def cli(
    db_url: str, engine: str, state_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Cli]:
    """Run ``pbxfw ARGS`` in-process against ``db_url``: ``cli("network", "list")``."""
    monkeypatch.setenv("PBXFW_DB", db_url)
    if engine != "sqlite":
        # Beside the SQLite file by default; a server database has no "beside".
        monkeypatch.setenv("PBXFW_STATE_DIR", str(state_dir))
    monkeypatch.delenv("SSH_CLIENT", raising=False)
    runner = CliRunner()

    def run(*args: str, input: str | None = None) -> CliResult:
        result = runner.invoke(app, list(args), input=input, catch_exceptions=False)
        return CliResult(result.exit_code, result.stdout, result.stderr)

    yield run
