"""The Alembic migrations, one by one, on both engines (tests/conftest.py).

Every revision in the migrations folder is applied in order on an empty
database, then undone and applied again; at the newest one the schema is
exactly what models.py declares (tables, columns, types, indexes,
constraints). A new migration is picked up by this test without a change
here, on SQLite and on PostgreSQL.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Engine, inspect

from pbxfw.storage.db import _alembic_config, make_engine, migrate
from pbxfw.storage.models import Base
from tests.pgserver import PgServer

PBXFW = str(Path(sys.executable).with_name("pbxfw"))


@pytest.fixture
def empty_engine(engine: str, db_path: Path, request: pytest.FixtureRequest) -> Iterator[Engine]:
    """An engine on a database with no table at all."""
    if engine == "sqlite":
        made = make_engine(f"sqlite:///{db_path}", create_dir=True)
        yield made
        made.dispose()
        return
    server: PgServer = request.getfixturevalue("pg_server")
    name = server.create_database(template=None)
    made = make_engine(server.url(name))
    yield made
    made.dispose()
    server.drop_database(name)


def _run(engine: Engine, action: str, revision: str) -> None:
    config = _alembic_config()
    with engine.connect() as connection:
        config.attributes["connection"] = connection
        getattr(command, action)(config, revision)
        connection.commit()


def _current(engine: Engine) -> str | None:
    with engine.connect() as connection:
        return MigrationContext.configure(connection).get_current_revision()


def _differences(engine: Engine) -> list[object]:
    with engine.connect() as connection:
        context = MigrationContext.configure(connection, opts={"compare_type": True})
        return list(compare_metadata(context, Base.metadata))


def test_each_migration_in_order_up_down_and_up_to_the_models(empty_engine: Engine) -> None:
    revisions = [
        s.revision for s in ScriptDirectory.from_config(_alembic_config()).walk_revisions()
    ]
    revisions.reverse()  # base first
    assert revisions[:3] == ["0001", "0002", "0003"]
    for revision in revisions:
        _run(empty_engine, "upgrade", revision)
        assert _current(empty_engine) == revision
    assert _differences(empty_engine) == []
    _run(empty_engine, "downgrade", "base")
    assert _current(empty_engine) is None
    assert set(inspect(empty_engine).get_table_names()) <= {"alembic_version"}
    migrate(empty_engine)
    assert _current(empty_engine) == revisions[-1]
    assert _differences(empty_engine) == []
    migrate(empty_engine)  # idempotent


def test_two_inits_at_once_on_an_empty_database(empty_engine: Engine) -> None:
    """The real command twice at the same moment: both succeed, one schema,
    one initialisation (the writers' lock orders the migrations too)."""
    url = empty_engine.url.render_as_string(hide_password=False)
    procs = [
        subprocess.Popen(
            [PBXFW, "init", "--db", url], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        for _ in range(2)
    ]
    outputs = [proc.communicate(timeout=120) for proc in procs]
    assert [proc.returncode for proc in procs] == [0, 0], outputs
    assert _differences(empty_engine) == []
    listed = subprocess.run(
        [PBXFW, "network", "list", "--json", "--db", url],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert [n["name"] for n in json.loads(listed.stdout)] == ["Internet", "Internet IPv6"]
