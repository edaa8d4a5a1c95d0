"""Fleet tests (issue 16): PostgreSQL only.

Fleet mode is PostgreSQL's (one database, many PBXs), so every database
fixture here (``db_url``, ``svc``, ``cli``…) is on the session's real
PostgreSQL server (tests/pgserver.py); nothing here runs on SQLite.
"""

from __future__ import annotations

import pytest


@pytest.fixture
def engine() -> str:
    return "postgresql"
