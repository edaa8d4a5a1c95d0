"""Apply as one transaction, refusal, and the confirm-or-rollback window."""

from __future__ import annotations

import contextlib
import ipaddress
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from pbxfw.compiler import BanElement, compile_ruleset
from pbxfw.errors import KernelError
from pbxfw.kernel import (
    NftBackend,
    PendingChange,
    apply_with_confirm,
    confirm,
    last_rollback,
    pending,
    rollback,
    shift_expiry,
)
from pbxfw.kernel.confirm import expire, namespace_dir, supersede
from pbxfw.kernel.nft import without_flow_tag
from tests.helpers import wait_for

from .configs import lab_config
from .lab import Lab, require_kernel

BAN = BanElement(ipaddress.ip_network("192.0.2.9/32"), "asterisk", 600)
OLD = compile_ruleset(lab_config(firewall_enabled=False), [BAN])
NEW = compile_ruleset(lab_config())
NEWER = compile_ruleset(lab_config(sip_rate_limit=10))
OTHER_TABLE = (
    "table inet other {\n\tchain c {\n\t\ttype filter hook input priority 0; policy accept;\n"
    "\t\ttcp dport 1234 drop\n\t}\n}\ntable ip natty {\n\tchain p {\n"
    "\t\ttype nat hook prerouting priority dstnat; policy accept;\n\t}\n}\n"
)


@dataclass
class Env:
    lab: Lab
    ns: str
    backend: NftBackend
    state: Path

    def table(self) -> str | None:
        """The running table, its flow tag blanked (every load picks a new one)."""
        listed = self.backend.list_table(stateless=True)
        return None if listed is None else without_flow_tag(listed)

    def compiled(self, text: str) -> str:
        """``text`` as the kernel lists it (load it in a scratch namespace)."""
        scratch = self.lab.namespace(f"s{len(self.lab.namespaces)}")
        backend = NftBackend(scratch)
        backend.apply(text)
        listed = backend.list_table(stateless=True)
        assert listed is not None
        return without_flow_tag(listed)


@pytest.fixture
def env(tmp_path: Path) -> Iterator[Env]:
    require_kernel()
    lab = Lab("apply")
    try:
        ns = lab.namespace("pbx")
        yield Env(lab, ns, NftBackend(ns), tmp_path / "state")
    finally:
        # Stop a watchdog a failed test may have left (it lives in the
        # host namespace, started by this process: ours to stop).
        with contextlib.suppress(Exception):
            change = pending(tmp_path / "state", lab.namespaces[0])
            if change is not None and change.watchdog_pid:
                os.kill(change.watchdog_pid, signal.SIGKILL)
        lab.close()


def _alive(pid: int | None) -> bool:
    if not pid:
        return False
    try:
        state = Path(f"/proc/{pid}/stat").read_text().split(") ")[1][0]
    except (OSError, IndexError):
        return False
    return state != "Z"


@pytest.mark.kernel
def test_apply_replaces_only_the_pbxfw_table(env: Env) -> None:
    env.lab.nft(env.ns, "-f", "-", input=OTHER_TABLE)
    others = env.lab.nft(env.ns, "list", "table", "inet", "other")
    others += env.lab.nft(env.ns, "list", "table", "ip", "natty")
    env.backend.apply(OLD)
    env.backend.apply(NEW)
    assert env.table() == env.compiled(NEW)
    env.backend.delete_table()
    env.backend.delete_table()  # idempotent
    assert env.backend.list_table() is None
    after = env.lab.nft(env.ns, "list", "table", "inet", "other")
    after += env.lab.nft(env.ns, "list", "table", "ip", "natty")
    assert after == others


@pytest.mark.kernel
def test_refused_ruleset_leaves_the_running_one_byte_for_byte(env: Env) -> None:
    env.backend.apply(NEW)
    before = env.lab.nft(env.ns, "list", "ruleset")
    bad = NEW.replace("tcp . 22 :", "tcp . 70000 :")
    assert bad != NEW
    with pytest.raises(KernelError) as refused:
        env.backend.apply(bad)
    assert "Error" in str(refused.value) and "70000" in str(refused.value)
    payload = refused.value.payload
    assert payload is not None and without_flow_tag(bad) in without_flow_tag(payload)
    with pytest.raises(KernelError, match="only declare table inet pbxfw"):
        env.backend.apply(NEW + "table ip evil {\n}\n")
    assert env.lab.nft(env.ns, "list", "ruleset") == before


@pytest.mark.kernel
def test_bans_are_added_refreshed_and_removed(env: Env) -> None:
    env.backend.apply(OLD)
    ban = BanElement(ipaddress.ip_network("203.0.113.0/24"), "ssh", 100)
    env.backend.add([ban])
    env.backend.commit()
    env.backend.add([BanElement(ban.subnet, "ssh", 5000)])  # refresh, no error
    env.backend.commit()
    listed = env.lab.nft(env.ns, "list", "set", "inet", "pbxfw", "ban_ssh_net_v4")
    assert "203.0.113.0/24 timeout 1h23m20s" in listed
    host = BanElement(ipaddress.ip_network("203.0.113.7/32"), "ssh", 100)
    env.backend.add([host], refresh=False)  # known absent: one plain add
    env.backend.commit()
    env.backend.add([BanElement(host.subnet, "ssh", 5000)])
    env.backend.commit()
    assert "203.0.113.7 timeout 1h23m20s" in env.lab.nft(
        env.ns, "list", "set", "inet", "pbxfw", "ban_ssh_v4"
    )
    for _ in range(2):  # absent the second time: fine
        env.backend.delete([ban, host])
        env.backend.commit()
    for name in ("ban_ssh_v4", "ban_ssh_net_v4", "banned_v4", "banned_net_v4"):
        assert "203.0.113" not in env.lab.nft(env.ns, "list", "set", "inet", "pbxfw", name)


@pytest.mark.kernel
def test_unconfirmed_change_rolls_back_by_itself(env: Env) -> None:
    env.backend.apply(OLD)
    before = env.table()
    change = apply_with_confirm(env.backend, NEW, 1.5, env.state)
    assert env.table() == env.compiled(NEW)
    assert pending(env.state, env.ns) == change and _alive(change.watchdog_pid)
    assert wait_for(lambda: pending(env.state, env.ns) is None, 8)
    assert env.table() == before
    record = last_rollback(env.state, env.ns)
    assert record is not None and record["token"] == change.token
    assert Path(str(record["rejected"])).read_text() == NEW
    # The ban kept its remaining lifetime rather than starting over.
    listed = env.lab.nft(env.ns, "list", "set", "inet", "pbxfw", "ban_asterisk_v4")
    assert "192.0.2.9 timeout 10m expires 9m5" in listed
    assert wait_for(lambda: not _alive(change.watchdog_pid), 3)


@pytest.mark.kernel
def test_rollback_survives_sigkill_of_the_applier(env: Env, tmp_path: Path) -> None:
    env.backend.apply(OLD)
    before = env.table()
    (tmp_path / "new.nft").write_text(NEW)
    script = (
        "import sys, time\n"
        "from pbxfw.kernel import NftBackend, apply_with_confirm\n"
        "text = open(sys.argv[2]).read()\n"
        "apply_with_confirm(NftBackend(sys.argv[1]), text, 2.0, sys.argv[3])\n"
        "print('applied', flush=True)\n"
        "time.sleep(60)\n"
    )
    # The with block closes the pipe and reaps the process, also on failure.
    with subprocess.Popen(
        [sys.executable, "-c", script, env.ns, str(tmp_path / "new.nft"), str(env.state)],
        stdout=subprocess.PIPE,
        text=True,
    ) as applier:
        try:
            assert applier.stdout is not None and applier.stdout.readline().strip() == "applied"
            os.kill(applier.pid, signal.SIGKILL)
            applier.wait(timeout=5)
        finally:
            if applier.poll() is None:
                applier.kill()
    assert env.table() == env.compiled(NEW)
    assert wait_for(lambda: pending(env.state, env.ns) is None, 8)
    assert env.table() == before


@pytest.mark.kernel
def test_confirmed_change_stays(env: Env) -> None:
    env.backend.apply(OLD)
    change = apply_with_confirm(env.backend, NEW, 1.0, env.state)
    assert confirm(env.state, env.ns) == change
    assert confirm(env.state, env.ns) is None
    assert wait_for(lambda: not _alive(change.watchdog_pid), 3)
    time.sleep(max(0.0, change.deadline - time.time()) + 0.3)
    assert env.table() == env.compiled(NEW)
    assert last_rollback(env.state, env.ns) is None


@pytest.mark.kernel
def test_rollback_at_once_and_reapply_keeps_the_first_snapshot(env: Env) -> None:
    env.backend.apply(OLD)
    before = env.table()
    first = apply_with_confirm(env.backend, NEW, 60, env.state)
    second = apply_with_confirm(env.backend, NEWER, 60, env.state)
    assert env.table() == env.compiled(NEWER)
    assert wait_for(lambda: not _alive(first.watchdog_pid), 3)
    assert rollback(env.state, env.ns) == second
    assert env.table() == before
    assert rollback(env.state, env.ns) is None and confirm(env.state, env.ns) is None
    assert wait_for(lambda: not _alive(second.watchdog_pid), 3)


@pytest.mark.kernel
def test_rollback_without_a_previous_table_removes_ours(env: Env) -> None:
    change = apply_with_confirm(env.backend, NEW, 60, env.state)
    assert env.backend.list_table() is not None
    rollback(env.state, env.ns)
    assert env.backend.list_table() is None
    assert wait_for(lambda: not _alive(change.watchdog_pid), 3)


@pytest.mark.kernel
def test_refused_change_under_confirm_changes_nothing(env: Env) -> None:
    env.backend.apply(OLD)
    before = env.lab.nft(env.ns, "-s", "list", "ruleset")  # -s: ban expiry ticks
    with pytest.raises(KernelError):
        apply_with_confirm(env.backend, NEW.replace("tcp . 22 :", "tcp . 70000 :"), 60, env.state)
    assert pending(env.state, env.ns) is None
    assert env.lab.nft(env.ns, "-s", "list", "ruleset") == before


def _kill_watchdog(change: PendingChange) -> None:
    """The watchdog is gone (killed, or the host rebooted): nothing restores by itself."""
    assert change.watchdog_pid is not None
    os.kill(change.watchdog_pid, signal.SIGKILL)
    assert wait_for(lambda: not _alive(change.watchdog_pid), 3)


@pytest.mark.kernel
def test_a_late_confirm_keeps_nothing(env: Env) -> None:
    env.backend.apply(OLD)
    before = env.table()
    change = apply_with_confirm(env.backend, NEW, 1.0, env.state)
    _kill_watchdog(change)
    time.sleep(max(0.0, change.deadline - time.time()) + 0.3)
    assert env.table() == env.compiled(NEW)  # expired, nobody noticed yet
    assert confirm(env.state, env.ns) is None
    assert env.table() == before
    record = last_rollback(env.state, env.ns)
    assert record is not None and record["token"] == change.token
    assert "too late" in str(record["reason"])


@pytest.mark.kernel
def test_expire_rolls_back_only_an_expired_change_and_once(env: Env) -> None:
    env.backend.apply(OLD)
    before = env.table()
    change = apply_with_confirm(env.backend, NEW, 1.0, env.state)
    _kill_watchdog(change)
    assert expire(env.state, env.ns) is None  # the window is still open
    assert env.table() == env.compiled(NEW)
    time.sleep(max(0.0, change.deadline - time.time()) + 0.3)
    assert expire(env.state, env.ns) == change
    assert env.table() == before and pending(env.state, env.ns) is None
    assert expire(env.state, env.ns) is None
    record = last_rollback(env.state, env.ns)
    assert record is not None and record["token"] == change.token


@pytest.mark.kernel
def test_an_apply_without_window_supersedes_the_pending_change(env: Env) -> None:
    env.backend.apply(OLD)
    change = apply_with_confirm(env.backend, NEW, 1.0, env.state)
    env.backend.apply(NEWER)
    assert supersede(env.state, env.ns) == change
    assert pending(env.state, env.ns) is None
    assert wait_for(lambda: not _alive(change.watchdog_pid), 3)
    time.sleep(max(0.0, change.deadline - time.time()) + 0.3)
    assert env.table() == env.compiled(NEWER)  # no old snapshot came back over it
    assert last_rollback(env.state, env.ns) is None


def test_shift_expiry_shortens_remaining_lifetimes() -> None:
    text = "elements = { 1.2.3.4 timeout 1h expires 59m57s920ms, 5.6.7.8 timeout 2s expires 1s500ms,\n 9.9.9.9 }"
    assert shift_expiry(text, 10) == (
        "elements = { 1.2.3.4 timeout 1h expires 3587920ms, 5.6.7.8 timeout 2s expires 1ms,\n 9.9.9.9 }"
    )


def test_namespace_dir_refuses_path_tricks(tmp_path: Path) -> None:
    assert namespace_dir(tmp_path, None) == tmp_path / "host"
    assert namespace_dir(tmp_path, "pbx") == tmp_path / "netns-pbx"
    for bad in ("../x", "", ".hidden"):
        with pytest.raises(ValueError):
            namespace_dir(tmp_path, bad)
