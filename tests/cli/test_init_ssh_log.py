"""``pbxfw init`` sets ``log_ssh`` by what the host has (issue 15, "The journal").

auth.log when it exists and is written (modified within 7 days), else
sshd's journal. The hidden ``--auth-log`` names the file that stands for
/var/log/auth.log here.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import pytest

from pbxfw.domain.logsource import (
    AUTH_LOG,
    AUTH_LOG_FRESH_SECONDS,
    SSH_JOURNAL,
    ssh_log_default,
)
from tests.helpers import Cli


def log_ssh(cli: Cli) -> str:
    value: str = json.loads(cli("settings", "show", "--json").stdout)["log_ssh"]
    return value


def test_a_written_auth_log_is_kept(cli: Cli, tmp_path: Path) -> None:
    auth = tmp_path / "auth.log"
    auth.write_text("Dec  4 10:00:00 pbx sshd[1]: Server listening on 0.0.0.0 port 22.\n")
    result = cli("init", "--auth-log", str(auth))
    assert result.exit_code == 0, result.stderr
    assert f"log_ssh: {auth}" in result.stdout
    assert log_ssh(cli) == str(auth)


@pytest.mark.parametrize("state", ["absent", "stale", "folder"])
def test_without_a_written_auth_log_sshd_s_journal_is_read(
    cli: Cli, tmp_path: Path, state: str
) -> None:
    auth = tmp_path / "auth.log"
    if state == "stale":  # rsyslog removed: the file stays, nothing writes it
        auth.write_text("old\n")
        old = time.time() - AUTH_LOG_FRESH_SECONDS - 3600
        os.utime(auth, (old, old))
    elif state == "folder":
        auth.mkdir()
    result = cli("init", "--auth-log", str(auth))
    assert result.exit_code == 0, result.stderr
    assert "log_ssh: journal:ssh.service" in result.stdout
    assert log_ssh(cli) == "journal:ssh.service"


def test_init_chooses_once(cli: Cli, tmp_path: Path) -> None:
    auth = tmp_path / "auth.log"
    assert cli("init", "--auth-log", str(auth)).exit_code == 0
    assert log_ssh(cli) == SSH_JOURNAL
    exported = json.loads(cli("export").stdout)
    auth.write_text("now written\n")
    again = cli("init", "--auth-log", str(auth))
    assert again.exit_code == 0 and "log_ssh" not in again.stdout
    assert log_ssh(cli) == SSH_JOURNAL
    assert json.loads(cli("export").stdout) == exported
    # A value the administrator set is never replaced.
    assert cli("settings", "set", "log_ssh=/var/log/secure").exit_code == 0
    assert cli("init", "--auth-log", str(auth)).exit_code == 0
    assert log_ssh(cli) == "/var/log/secure"


def test_the_rule() -> None:
    assert ssh_log_default(None) == SSH_JOURNAL
    assert ssh_log_default(0.0) == AUTH_LOG
    assert ssh_log_default(AUTH_LOG_FRESH_SECONDS) == AUTH_LOG
    assert ssh_log_default(AUTH_LOG_FRESH_SECONDS + 1) == SSH_JOURNAL
