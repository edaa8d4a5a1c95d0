"""Issue 15 acceptance: the SSH jail bans a real guesser on a host whose sshd logs only
to the journal.

A real ``pbxfw agent`` (its own process, real nftables in a namespace)
follows ``log_ssh=journal:ssh.service`` in real journal files that
systemd-journal-remote writes while the agent runs (``--journal-directory``:
the agent's only difference from reading the system journal). The guesser's
failures ban it in the kernel's ``ban_ssh_v4`` set and its SSH connections
are dropped. The agent is then stopped and started again, more entries are
appended (some while it is down): the counters show every entry counted
once, none twice, none missed, and a second guesser is banned exactly at
``ips_maxretry``.
"""

from __future__ import annotations

import json
import os
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.agent import test_agent_kernel
from tests.agent.agent_process import start_agent, stop_agent, wait_until
from tests.agent.journal_files import JournalFiles, require_journal_tools
from tests.kernel.lab import Lab, Probe, require_kernel

PBX = "10.79.2.1"
GUESSER = "198.51.100.70"
SECOND = "198.51.100.71"

pytestmark = pytest.mark.kernel


@dataclass
class Env(test_agent_kernel.Env):
    """The lab of test_agent_kernel, with sshd's journal instead of Asterisk's logs."""

    journal: JournalFiles
    pid: int = 5000

    def agent(self) -> subprocess.Popen[str]:
        return start_agent(
            self.pbx, self.db, self.tmp, "--journal-directory", str(self.journal.folder)
        )

    def banned(self) -> str:
        return self.lab.nft(self.pbx, "list", "set", "inet", "pbxfw", "ban_ssh_v4")

    def guess(self, source: str, count: int) -> None:
        """``count`` password guesses from ``source``, one connection (sshd pid) each,
        as Debian 12's sshd writes them to the journal."""
        entries = []
        for _ in range(count):
            self.pid += 1
            message = f"Failed password for root from {source} port {40000 + self.pid} ssh2"
            entries.append(self.journal.sshd(message, self.pid))
        self.journal.append(entries)

    def ssh_counters(self) -> dict[str, int]:
        status = json.loads(self.pbxfw("ips", "status", "--json").stdout)
        counters: dict[str, int] = status["jails"].get("ssh", {"lines": 0, "failures": 0})
        return counters


def stop(agent: subprocess.Popen[str]) -> None:
    stop_agent(agent, seconds=10)


@pytest.fixture
def env(tmp_path: Path, db_url: str) -> Iterator[Env]:
    require_kernel()
    require_journal_tools()
    with Lab(f"aj{os.getpid() % 10000}") as lab:
        pbx = lab.namespace("pbx")
        inet = lab.namespace("inet")
        lab.link(pbx, "v-pbx", inet, "v-inet")
        lab.addr(pbx, "v-pbx", f"{PBX}/24")
        lab.addr(inet, "v-inet", "10.79.2.2/24")
        for source in (GUESSER, SECOND):
            lab.addr(inet, "v-inet", f"{source}/32")
            lab.route(pbx, f"{source}/32", "v-pbx")
        listener = lab.listen(pbx, tcp=[22])
        e = Env(lab, pbx, inet, listener, tmp_path, db_url, JournalFiles(tmp_path / "journal"))
        # The host's sshd has written to the journal before pbxfw came.
        e.journal.append([e.journal.sshd("Server listening on 0.0.0.0 port 22.", 100)])
        assert e.pbxfw("init").returncode == 0
        settings = [
            "ips_maxretry=4",
            "log_asterisk_messages=",
            "log_asterisk_security=",
            "log_ssh=journal:ssh.service",
            "log_web=",
            "asterisk_config_dir=",
            "firewall_enabled=true",
        ]
        result = e.pbxfw("settings", "set", *settings)
        assert result.returncode == 0, result.stderr
        assert e.pbxfw("network", "set", "Internet", "--allow", "ssh").returncode == 0
        yield e


def test_the_ssh_jail_bans_a_guesser_from_the_journal_and_a_restart_counts_once(
    env: Env,
) -> None:
    agent = env.agent()
    try:
        assert wait_until(lambda: "pbxfw" in env.lab.nft(env.pbx, "list", "tables"), 10)
        # The entry written before the agent came is read (within the window).
        assert wait_until(lambda: env.ssh_counters()["lines"] == 1, 10) is not None
        ssh = Probe("tcp", GUESSER, PBX, 22)
        assert env.lab.probe(env.inet, [ssh]) == {ssh: "open"}

        env.guess(GUESSER, 3)  # below ips_maxretry
        assert wait_until(lambda: env.ssh_counters()["failures"] == 3, 10) is not None
        assert GUESSER not in env.banned()

        env.guess(GUESSER, 1)  # the 4th guess: banned at once
        took = wait_until(lambda: GUESSER in env.banned(), 2.0)
        assert took is not None, "not banned within 2 s of the entry"
        assert env.lab.probe(env.inet, [ssh]) == {ssh: "timeout"}
        bans = json.loads(env.pbxfw("bans", "list", "--json").stdout)
        assert [(b["address"], b["jail"]) for b in bans] == [(GUESSER, "ssh")]
        status = json.loads(env.pbxfw("ips", "status", "--json").stdout)
        row = next(s for s in status["sources"] if s["source"] == "journal:ssh.service")
        assert row["ok"] is True and row["jail"] == "ssh"
        assert wait_until(lambda: env.ssh_counters()["lines"] == 5, 5) is not None
        stop(agent)

        # Down: the second guesser's first two guesses land in the journal.
        counted = env.ssh_counters()
        assert (counted["lines"], counted["failures"]) == (5, 4)
        env.guess(SECOND, 2)
        agent = env.agent()
        assert wait_until(lambda: env.ssh_counters()["failures"] == 6, 10) is not None
        time.sleep(1.0)  # a restart that re-read the old entries would count them now
        counted = env.ssh_counters()
        assert (counted["lines"], counted["failures"]) == (7, 6)
        assert SECOND not in env.banned()
        assert GUESSER in env.banned()  # restored from the database

        env.guess(SECOND, 1)  # 3 of 4: the two read after the restart count
        assert wait_until(lambda: env.ssh_counters()["failures"] == 7, 10) is not None
        assert SECOND not in env.banned()
        env.guess(SECOND, 1)  # the 4th
        assert wait_until(lambda: SECOND in env.banned(), 2.0) is not None
        ssh2 = Probe("tcp", SECOND, PBX, 22)
        assert env.lab.probe(env.inet, [ssh2]) == {ssh2: "timeout"}
        assert wait_until(lambda: env.ssh_counters()["lines"] == 9, 5) is not None
        counted = env.ssh_counters()
        assert (counted["lines"], counted["failures"]) == (9, 8)
    finally:
        stop(agent)
        print((env.tmp / "agent.log").read_text()[-3000:])
