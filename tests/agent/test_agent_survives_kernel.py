"""The real agent survives a log path that is a folder (issue 13 item 5).

``pbxfw settings set log_ssh=<a folder>`` used to kill ``pbxfw agent`` with
IsADirectoryError, and a restarted agent died again (the setting is stored):
no bans, no resync of the kernel. Here, through the real CLI and the real
agent in a test namespace: the agent keeps running (also after a restart),
the Asterisk jail still bans into the kernel, a deleted table is restored, ``pbxfw ips status`` (text and
``--json``) names the failing source and why, the agent logs it once, and
when the setting is fixed and applied the status clears.

(A NUL byte in a path cannot be passed on a command line, and the settings
validator refuses it; tests/agent/test_agent_survives.py covers it in-process.)
"""

from __future__ import annotations

import json
import os
import subprocess
import time
from pathlib import Path
from typing import Any

from tests.agent.agent_process import PBXFW, stop_agent, wait_until
from tests.agent.test_agent_kernel import (  # noqa: F401 - env is a fixture
    ATTACKER,
    Env,
    env,
)


def cli(e: Env, *args: str) -> subprocess.CompletedProcess[str]:
    """``pbxfw ARGS`` against the test database, never as an SSH session
    (the anti-lockout check would look at the runner's own SSH client)."""
    environ = {k: v for k, v in os.environ.items() if k != "SSH_CLIENT"}
    environ["PBXFW_STATE_DIR"] = str(e.tmp / "state")
    return subprocess.run(
        [PBXFW, *args, "--db", e.db],
        capture_output=True,
        text=True,
        timeout=60,
        env=environ,
    )


#: SIGTERM, then SIGKILL (test_agent_node_kernel imports it from here).
stop = stop_agent


def sources(e: Env) -> dict[str, dict[str, Any]]:
    answer = cli(e, "ips", "status", "--json")
    assert answer.returncode == 0, answer.stderr
    return {s["source"]: s for s in json.loads(answer.stdout)["sources"]}


def failing(e: Env) -> dict[str, dict[str, Any]]:
    return {k: v for k, v in sources(e).items() if not v["ok"]}


def test_a_log_path_that_is_a_folder_does_not_stop_the_agent(env: Env) -> None:  # noqa: F811
    folder = env.tmp / "ssh-logs"
    folder.mkdir()
    assert cli(env, "settings", "set", f"log_ssh={folder}").returncode == 0
    log = env.tmp / "agent.log"
    agent = env.agent()
    try:
        took = wait_until(lambda: str(folder) in failing(env), 10, step=0.2)
        assert took is not None, log.read_text()[-3000:]
        row = failing(env)[str(folder)]
        assert row["jail"] == "ssh"
        assert row["error"] == "is a folder, not a file (setting log_ssh)"
        assert row["since"] <= time.time()
        text = cli(env, "ips", "status")
        assert text.returncode == 0
        assert "FAILING" in text.stdout and "is a folder, not a file" in text.stdout
        assert "ssh-logs" in text.stdout

        # Still running, the other jails still ban into the kernel.
        env.fail(ATTACKER, 5)
        took = wait_until(lambda: ATTACKER in env.banned(), 2.0)
        assert took is not None, "not banned within 2 s"
        # The rules part keeps resyncing: a deleted table comes back, ban included.
        env.lab.nft(env.pbx, "delete", "table", "inet", "pbxfw")
        took = wait_until(
            lambda: "pbxfw" in env.lab.nft(env.pbx, "list", "tables") and ATTACKER in env.banned(),
            3.0,
        )
        assert took is not None, "the table was not restored while a source fails"
        time.sleep(3)  # several retries of the folder, every tick in between
        assert agent.poll() is None, log.read_text()[-3000:]
        assert _errors_about(log, folder) == 1, log.read_text()[-3000:]

        # A restart with the setting still stored: it runs, and keeps the ban.
        stop(agent)
        env.lab.nft(env.pbx, "delete", "table", "inet", "pbxfw")
        agent = env.agent()
        took = wait_until(
            lambda: "pbxfw" in env.lab.nft(env.pbx, "list", "tables") and ATTACKER in env.banned(),
            5.0,
        )
        assert took is not None, "the restarted agent did not restore the table"
        assert wait_until(lambda: str(folder) in failing(env), 5, step=0.2) is not None
        assert agent.poll() is None

        # Fixed and applied: the agent follows the file and the status clears.
        auth_log = env.tmp / "auth.log"
        auth_log.touch()
        assert cli(env, "settings", "set", f"log_ssh={auth_log}").returncode == 0
        applied = cli(env, "apply", "--netns", env.pbx, "--state-dir", str(env.tmp / "state"))
        assert applied.returncode == 0, applied.stderr
        took = wait_until(lambda: not failing(env) and str(auth_log) in sources(env), 5, step=0.2)
        assert took is not None, (sources(env), log.read_text()[-3000:])
        assert str(folder) not in sources(env)
        assert agent.poll() is None
    finally:
        stop(agent)
        print(log.read_text()[-3000:])


def _errors_about(log: Path, path: Path) -> int:
    return sum(
        1 for line in log.read_text().splitlines() if " ERROR " in line and str(path) in line
    )
