"""``pbxfw --db URL COMMAND`` and ``pbxfw --version``.

The database a command uses is, first to last: its own ``--db``, the global
``--db`` before the command, ``PBXFW_DB`` (the ``cli`` fixture sets it to
``db_path``), ``var/pbxfw.db``. Through the in-process CLI, then once as a
real process.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from importlib.metadata import version
from pathlib import Path

import pytest

from tests.helpers import Cli

PBXFW = str(Path(sys.executable).with_name("pbxfw"))


def names(cli: Cli, *db: str) -> list[str]:
    """The network names stored in the database that ``db`` (options) names."""
    result = cli(*db, "network", "list", "--json")
    assert result.exit_code == 0, result.stderr
    return [n["name"] for n in json.loads(result.stdout)]


def test_the_global_db_names_the_database_before_the_command(
    cli: Cli, db_path: Path, tmp_path: Path
) -> None:
    other = tmp_path / "other.db"
    assert cli("--db", str(other), "init").exit_code == 0
    assert other.exists() and not db_path.exists()  # the global --db won over PBXFW_DB
    assert cli("--db", str(other), "network", "add", "Office", "10.1.0.0/16").exit_code == 0
    assert names(cli, "--db", str(other)) == ["Internet", "Internet IPv6", "Office"]
    assert names(cli, "--db", f"sqlite:///{other}") == ["Internet", "Internet IPv6", "Office"]
    # The next command without it is back on PBXFW_DB, which was never initialised.
    result = cli("network", "list")
    assert result.exit_code != 0 and f"no database at {db_path}" in result.stderr


def test_the_commands_own_db_wins_over_the_global_one(
    cli: Cli, db_path: Path, tmp_path: Path
) -> None:
    other = tmp_path / "other.db"
    assert cli("init").exit_code == 0
    assert cli("--db", str(other), "init").exit_code == 0
    assert cli("network", "add", "Env", "10.2.0.0/16").exit_code == 0
    added = cli("--db", str(db_path), "network", "add", "Global", "10.3.0.0/16", "--db", str(other))
    assert added.exit_code == 0, added.stderr
    assert names(cli) == ["Internet", "Internet IPv6", "Env"]
    assert names(cli, "--db", str(tmp_path / "missing.db"), "--db", str(other)) == [
        "Internet",
        "Internet IPv6",
        "Global",
    ]
    # The command-level option alone still works, as before.
    result = cli("network", "list", "--json", "--db", str(other))
    assert [n["name"] for n in json.loads(result.stdout)][-1] == "Global"


def test_a_bad_global_db_is_refused_as_the_commands_own_is(cli: Cli) -> None:
    for args in (["--db", "://nope", "network", "list"], ["network", "list", "--db", "://nope"]):
        result = cli(*args)
        assert result.exit_code == 4  # the database cannot be reached (docs/decisions.md)
        assert "--db: '://nope' is not a database URL" in result.stderr


def test_version(cli: Cli) -> None:
    result = cli("--version")
    assert result.exit_code == 0
    assert result.stdout == f"pbxfw {version('pbxfw')}\n"


def test_the_global_db_and_version_as_a_real_process(tmp_path: Path) -> None:
    env_db, global_db = tmp_path / "env.db", tmp_path / "global.db"
    env = {**os.environ, "PBXFW_DB": str(env_db)}
    env.pop("SSH_CLIENT", None)

    def pbxfw(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [PBXFW, *args], capture_output=True, text=True, timeout=60, env=env, check=False
        )

    shown = pbxfw("--version")
    assert (shown.returncode, shown.stdout) == (0, f"pbxfw {version('pbxfw')}\n")
    assert pbxfw("--db", str(global_db), "init").returncode == 0
    assert global_db.exists() and not env_db.exists()
    added = pbxfw("--db", str(global_db), "network", "add", "Office", "10.1.0.0/16")
    assert added.returncode == 0, added.stderr
    listed = pbxfw("--db", str(global_db), "network", "show", "Office", "--json")
    assert json.loads(listed.stdout)["subnet"] == "10.1.0.0/16"
    assert pbxfw("network", "list").returncode != 0  # PBXFW_DB: never initialised


@pytest.mark.parametrize("args", [["--db"], ["--db", "x.db"]])
def test_the_global_db_without_a_command_is_a_usage_error(cli: Cli, args: list[str]) -> None:
    assert cli(*args).exit_code == 2
