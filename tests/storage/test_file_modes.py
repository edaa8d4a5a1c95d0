"""The database (password hashes) and the state folder (signing key) are their owner's only.

Real files: ``pbxfw init`` through the CLI, then a write that makes SQLite
create its ``-wal`` and ``-shm`` files, with a umask that would otherwise
leave them readable by everyone.
"""

from __future__ import annotations

import os
import sqlite3
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest

from pbxfw.cli.web import secret_key
from pbxfw.storage.db import database_url
from pbxfw.storage.repository import Store
from pbxfw.usecases import ConfigService, NetworkChange
from tests.helpers import Cli

#: Files and their modes: SQLite's own.
pytestmark = pytest.mark.sqlite_only


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.fixture(autouse=True)
def open_umask() -> Iterator[None]:
    """A umask of 022 (Debian's default): what SQLite would create as 0644."""
    old = os.umask(0o022)
    yield
    os.umask(old)


def test_init_creates_the_database_0600_and_the_state_folder_0700(cli: Cli, db_path: Path) -> None:
    assert cli("init").exit_code == 0
    assert mode(db_path) == 0o600
    assert mode(db_path.parent / "state") == 0o700


def test_the_wal_and_shm_files_are_0600(cli: Cli, db_path: Path) -> None:
    assert cli("init").exit_code == 0
    store = Store.open(database_url(str(db_path)))
    try:
        ConfigService(store).add_network(NetworkChange(name="Office", subnet="10.1.0.0/16"))
        # The store is still open: SQLite keeps its WAL and shared-memory files.
        for suffix in ("-wal", "-shm"):
            sibling = db_path.with_name(db_path.name + suffix)
            assert sibling.exists(), sibling
            assert mode(sibling) == 0o600, suffix
    finally:
        store.close()
    assert mode(db_path) == 0o600


def test_a_database_readable_by_others_is_tightened_when_opened(cli: Cli, db_path: Path) -> None:
    assert cli("init").exit_code == 0
    wal = db_path.with_name(db_path.name + "-wal")
    wal.touch()
    os.chmod(db_path, 0o644)
    os.chmod(wal, 0o666)
    # The command closes its store when it ends, and SQLite deletes the WAL
    # file with the last connection: this one keeps it there to be looked at.
    # It also writes a frame (the same user_version), since SQLite itself
    # gives an empty WAL file the database file's mode when opening it.
    holder = sqlite3.connect(db_path, isolation_level=None)
    try:
        (version,) = holder.execute("PRAGMA user_version").fetchone()
        holder.execute(f"PRAGMA user_version = {int(version)}")
        assert wal.stat().st_size > 0
        assert cli("network", "list").exit_code == 0
        assert mode(db_path) == 0o600
        assert mode(wal) == 0o600
    finally:
        holder.close()


def test_an_owner_only_mode_is_kept(cli: Cli, db_path: Path) -> None:
    assert cli("init").exit_code == 0
    os.chmod(db_path, 0o400)  # read-only for its owner: no bit is added
    try:
        Store.open(database_url(str(db_path))).close()
        assert mode(db_path) == 0o400
    finally:
        os.chmod(db_path, 0o600)


def test_the_state_folder_is_tightened_when_used(cli: Cli, db_path: Path) -> None:
    assert cli("init").exit_code == 0
    state = db_path.parent / "state"
    os.chmod(state, 0o755)
    assert cli("compile").exit_code == 0
    assert mode(state) == 0o700


def test_a_state_folder_given_by_option_is_created_0700_and_holds_the_key_0600(
    cli: Cli, tmp_path: Path
) -> None:
    assert cli("init").exit_code == 0
    state = tmp_path / "elsewhere" / "state"
    assert cli("confirm", "--state-dir", str(state)).exit_code == 0
    assert mode(state) == 0o700
    secret_key(str(state))  # what `pbxfw serve` reads or creates there
    assert mode(state / "web-secret.key") == 0o600
