"""An edit made after a rollback is what the next apply loads (issue 13, item 1).

Through the real CLI (subprocesses, no agent running), the kernel in a
namespace of its own, SSH checked with real packets from an office address:
the stored configuration returns to the last confirmed one when the kernel
rolls back — whoever notices first, exactly once — and an edit made
afterwards lands on top of it and is what `apply` loads.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from pbxfw.kernel.confirm import pending
from pbxfw.kernel.nft import without_flow_tag
from pbxfw.storage.repository import Store
from pbxfw.usecases.firewall import FirewallService
from tests.helpers import wait_for
from tests.kernel.lab import Lab, Probe, require_kernel

PBXFW = str(Path(sys.executable).with_name("pbxfw"))
PBX, OFFICE = "10.77.5.1", "10.77.5.10"
SSH = Probe("tcp", OFFICE, PBX, 22)
pytestmark = pytest.mark.kernel


@dataclass
class Env:
    lab: Lab
    pbx: str
    office: str
    #: the database URL (SQLite file or PostgreSQL: tests/conftest.py)
    db: str
    state: Path

    def pbxfw(self, *args: str) -> subprocess.CompletedProcess[str]:
        # No SSH_CLIENT: the anti-lockout check is not what these tests are about.
        env = {k: v for k, v in os.environ.items() if k != "SSH_CLIENT"}
        env["PBXFW_STATE_DIR"] = str(self.state)  # beside a SQLite file anyway
        return subprocess.run(
            [PBXFW, *args, "--db", self.db],
            capture_output=True,
            text=True,
            timeout=60,
            env=env,
        )

    def ok(self, *args: str) -> str:
        result = self.pbxfw(*args)
        assert result.returncode == 0, (args, result.stdout, result.stderr)
        return result.stdout

    def ssh(self) -> str:
        """What a TCP connect from the office to the PBX's port 22 meets."""
        return self.lab.probe(self.office, [SSH])[SSH]

    def table(self) -> str:
        """The running table, its flow tag blanked (every load picks a new one)."""
        return without_flow_tag(self.lab.nft(self.pbx, "-s", "list", "table", "inet", "pbxfw"))

    def office_ssh(self) -> str:
        """The stored verdict of network Office for ssh (a plain read: it
        carries nothing into storage by itself)."""
        return str(json.loads(self.ok("network", "show", "Office", "--json"))["services"]["ssh"])

    def revision(self) -> int:
        store = Store.open(self.db)
        try:
            with store.read() as repo:
                return repo.revision()
        finally:
            store.close()

    def rejected(self) -> dict[str, object]:
        path = self.state / f"netns-{self.pbx}" / "rejected-config.json"
        document: dict[str, object] = json.loads(path.read_text())
        return document


def verdict(document: dict[str, object], network: str, service: str) -> str:
    networks = document["networks"]
    assert isinstance(networks, list)
    return str(next(n for n in networks if n["name"] == network)["services"][service])


@pytest.fixture
def env(tmp_path: Path, db_url: str) -> Iterator[Env]:
    require_kernel()
    with Lab(f"rb{os.getpid() % 10000}") as lab:
        pbx, office = lab.namespace("pbx"), lab.namespace("office")
        lab.link(pbx, "v-pbx", office, "v-office")
        lab.addr(pbx, "v-pbx", f"{PBX}/24")
        lab.addr(office, "v-office", f"{OFFICE}/24")
        lab.listen(pbx, tcp=[22])
        e = Env(lab, pbx, office, db_url, tmp_path / "state")
        e.ok("init")
        e.ok("settings", "set", "firewall_enabled=true")
        e.ok("network", "add", "Office", "10.77.5.0/24", "--allow", "ssh")
        e.ok("apply", "--netns", pbx)  # the confirmed starting point
        assert e.ssh() == "open"
        try:
            yield e
        finally:
            # A watchdog a failed test may have left (started by our CLI): ours to stop.
            with contextlib.suppress(Exception):
                change = pending(e.state, pbx)
                if change is not None and change.watchdog_pid:
                    os.kill(change.watchdog_pid, signal.SIGKILL)


def test_an_edit_after_a_rollback_is_what_the_next_apply_loads(env: Env) -> None:
    confirmed_table = env.table()
    env.ok("network", "set", "Office", "--block", "ssh")
    env.ok("apply", "--netns", env.pbx, "--confirm", "3")
    assert env.ssh() == "timeout"

    # Not confirmed: the watchdog restores the table at the deadline ...
    assert wait_for(lambda: env.table() == confirmed_table, 10)
    assert env.ssh() == "open"
    # ... and the stored configuration follows it back at once, with no
    # command and no agent asking; the rejected one is kept.
    assert wait_for(lambda: env.office_ssh() == "allow", 5)
    assert verdict(env.rejected(), "Office", "ssh") == "block"

    # The administrator makes the change again: it lands on top ...
    env.ok("network", "set", "Office", "--block", "ssh")
    assert env.office_ssh() == "block"
    # ... and is what apply loads and confirm keeps.
    assert env.ok("apply", "--netns", env.pbx, "--confirm", "3").startswith(
        "applied configuration revision"
    )
    assert env.ssh() == "timeout"
    assert env.ok("confirm", "--netns", env.pbx).startswith("confirmed: the change stays")
    time.sleep(3.5)  # past the old deadline: nothing comes back
    assert env.ssh() == "timeout"
    assert env.table() != confirmed_table
    assert env.office_ssh() == "block"
    assert "nothing was waiting" in env.ok("confirm", "--netns", env.pbx)
    assert env.office_ssh() == "block"


def test_an_expired_change_is_reverted_exactly_once_whoever_notices(env: Env) -> None:
    """The watchdog is killed, so nothing rolls back at the deadline; then five
    parties notice the expired change at the same moment (four edits and a
    `rollback`): the kernel and storage come back once, and no party reverts
    after another's edit."""
    confirmed_table = env.table()
    env.ok("network", "set", "Office", "--block", "ssh")
    applied = json.loads(env.ok("apply", "--netns", env.pbx, "--confirm", "2", "--json"))
    watchdog = int(applied["pending"]["watchdog_pid"])
    os.kill(watchdog, signal.SIGKILL)
    assert wait_for(lambda: not Path(f"/proc/{watchdog}").exists(), 5)
    time.sleep(max(0.0, float(applied["pending"]["deadline"]) - time.time()) + 0.5)
    assert env.ssh() == "timeout"  # expired, but nobody has rolled it back yet
    base = env.revision()

    parties = [
        [PBXFW, "network", "add", f"Net{i}", f"10.9{i}.0.0/16", "--allow", "web"] for i in range(4)
    ]
    parties.append([PBXFW, "rollback", "--netns", env.pbx])
    cli_env = {k: v for k, v in os.environ.items() if k != "SSH_CLIENT"}
    cli_env["PBXFW_STATE_DIR"] = str(env.state)
    procs = [
        subprocess.Popen(
            [*argv, "--db", env.db],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=cli_env,
        )
        for argv in parties
    ]
    for proc in procs:
        out, err = proc.communicate(timeout=60)
        assert proc.returncode == 0, (proc.args, out, err)

    # The kernel is back to the confirmed table; storage too, with every edit on top.
    assert env.table() == confirmed_table
    assert env.ssh() == "open"
    assert env.office_ssh() == "allow"
    names = [n["name"] for n in json.loads(env.ok("network", "list", "--json"))]
    assert {f"Net{i}" for i in range(4)} <= set(names)
    assert env.revision() == base + 1 + 4  # one revert, four edits
    rejected = env.rejected()
    assert verdict(rejected, "Office", "ssh") == "block"
    assert not {f"Net{i}" for i in range(4)} & {
        str(n["name"])
        for n in rejected["networks"]  # type: ignore[attr-defined]
    }

    # Anyone noticing later finds nothing to do.
    assert "nothing was waiting" in env.ok("confirm", "--netns", env.pbx)
    store = Store.open(env.db)
    try:
        assert FirewallService(store, env.state).reconcile(env.pbx) is None
    finally:
        store.close()
    assert env.revision() == base + 5
    assert env.office_ssh() == "allow"

    # And the next apply loads exactly what is stored: the four new networks.
    assert env.ok("apply", "--netns", env.pbx).startswith(
        f"applied configuration revision {base + 5}"
    )
    assert env.ssh() == "open"
    assert env.table() != confirmed_table


def test_an_apply_that_notices_a_rollback_applies_nothing(env: Env) -> None:
    """The watchdog is gone and no edit came: the apply after the deadline is
    the first to notice. It rolls back and carries the rollback, then refuses,
    rather than load a configuration other than the one stored when it was
    asked."""
    confirmed_table = env.table()
    env.ok("network", "set", "Office", "--block", "ssh")
    applied = json.loads(env.ok("apply", "--netns", env.pbx, "--confirm", "2", "--json"))
    watchdog = int(applied["pending"]["watchdog_pid"])
    os.kill(watchdog, signal.SIGKILL)
    assert wait_for(lambda: not Path(f"/proc/{watchdog}").exists(), 5)
    time.sleep(max(0.0, float(applied["pending"]["deadline"]) - time.time()) + 0.5)

    refused = env.pbxfw("apply", "--netns", env.pbx)
    assert refused.returncode == 2, (refused.stdout, refused.stderr)
    assert "has been rolled back" in refused.stderr and "Nothing was applied" in refused.stderr
    assert env.table() == confirmed_table and env.ssh() == "open"
    assert env.office_ssh() == "allow"
    # Asked again, it loads what is stored now (the confirmed configuration).
    env.ok("apply", "--netns", env.pbx)
    assert env.ssh() == "open"
    assert env.office_ssh() == "allow"
