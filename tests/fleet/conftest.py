"""Fleet tests (issue 16): PostgreSQL only.

Fleet mode is PostgreSQL's (one database, many PBXs), so every database
fixture here (``db_url``, ``svc``, ``cli``…) is on the session's real
PostgreSQL server (tests/pgserver.py); nothing here runs on SQLite.
``fleet``: three real agents (nodes a, b, c) in three network namespaces on
this test's database, each listening.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.fleet.nodes import Fleet, start_listening
from tests.kernel.lab import Lab, require_kernel


@pytest.fixture
def engine() -> str:
    return "postgresql"


@pytest.fixture
def fleet(tmp_path: Path, db_url: str) -> Iterator[Fleet]:
    require_kernel()
    with Lab(f"fl{os.getpid() % 10000}") as lab:
        fleet = Fleet(lab, db_url, tmp_path)
        try:
            fleet.configure()
            start_listening(fleet, [fleet.add(name) for name in ("a", "b", "c")])
            yield fleet
        finally:
            fleet.close()
