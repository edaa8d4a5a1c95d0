"""Shared fixtures; and under CI=true a skipped test fails the run.

A green CI run must mean the kernel, database and browser tests really ran,
so a skip (missing root, nft, chromium…) is reported and turned into a
failure when the environment variable CI is "true".
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


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return tmp_path / "pbxfw.db"


@pytest.fixture
def svc(db_path: Path) -> Iterator[ConfigService]:
    """An initialised ConfigService on a fresh SQLite file."""
    service = ConfigService(Store.open(database_url(str(db_path)), create=True))
    service.init()
    yield service
    service.store.close()


@pytest.fixture
def cli(db_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Cli]:
    """Run ``pbxfw ARGS`` in-process against ``db_path``: ``cli("network", "list")``."""
    monkeypatch.setenv("PBXFW_DB", str(db_path))
    monkeypatch.delenv("SSH_CLIENT", raising=False)
    runner = CliRunner()

    def run(*args: str, input: str | None = None) -> CliResult:
        result = runner.invoke(app, list(args), input=input, catch_exceptions=False)
        return CliResult(result.exit_code, result.stdout, result.stderr)

    yield run
