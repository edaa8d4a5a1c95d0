"""The end-to-end lab: a real Asterisk 22 in the PBX namespace, an office and the Internet.

::

    office ns (10.77.10.0/24)          pbx ns                 inet ns: bridge br0 (203.0.113.0/24)
      .20  20 phones (SIPp)  ── lan0 ── 10.77.10.1                 .30 lab self-test
      .50  stale-password phone        203.0.113.1 ── wan0 ── br0  .13 enumerator, .14 flooder (SIPp)
      .30  lab self-test               Asterisk (chroot)          ├─ guesser ns  .11 (sipvicious)
                                                                  └─ cracker ns  .12 (sipvicious)

sipvicious 0.3.8 ignores its ``-b`` option (svcrack never passes the
binding address to its socket), so each sipvicious attacker is a host of its
own: a namespace whose only address is the attacker's, on the Internet
bridge. SIPp binds its source address (``-i``) and shares the inet namespace.

Everything is removed when the e2e tests are done (also on failure): Asterisk
is stopped (``core stop now``, then killed), ``/proc`` and ``/dev`` are
unmounted from the chroot, processes and namespaces are deleted. Leftovers
of a run that was killed outright are removed when the next run starts.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.kernel.lab import Lab, kernel_available, nft_ruleset, require_kernel

from .pbx import Asterisk, Chroot, ensure_chroot, unmount_all
from .summary import SUMMARY
from .tools import missing_tools

PBX_LAN, PBX_WAN = "10.77.10.1", "203.0.113.1"
OFFICE_NET = "10.77.10.0/24"
PHONES = "10.77.10.20"  # the office's 20 phones (one SIPp)
STALE_PHONE = "10.77.10.50"
OFFICE_SELFTEST = "10.77.10.30"
ATTACKERS = {
    "guesser": "203.0.113.11",  # svcrack, maxretry-1 then more wrong passwords
    "cracker": "203.0.113.12",  # svcrack, a long wordlist
    "enumerator": "203.0.113.13",  # SIPp, REGISTERs for unknown extensions
    "flooder": "203.0.113.14",  # SIPp, REGISTER flood
}
#: attackers that are hosts (namespaces) of their own
HOSTS = ("guesser", "cracker")
INET_SELFTEST = "203.0.113.30"  # the inet namespace's own (first) address


@dataclass
class PbxLab:
    lab: Lab
    chroot: Chroot
    asterisk: Asterisk
    pbx: str  # namespace names
    office: str
    inet: str
    hosts: dict[str, str]  # attacker name → its namespace (HOSTS)
    workdir: Path

    def ns_of(self, attacker: str) -> str:
        return self.hosts.get(attacker, self.inet)


def _require_tools() -> None:
    require_kernel()
    missing = missing_tools()
    if missing:
        why = "end-to-end tests need " + ", ".join(missing)
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(f"{why} (CI=true: e2e tests must run)", pytrace=False)
        pytest.skip(why)


def _remove_stale_namespaces() -> None:
    """Namespaces of an e2e run whose process is gone (killed with -9)."""
    out = subprocess.run(
        ["ip", "netns", "list"], capture_output=True, text=True, check=False
    ).stdout
    for line in out.splitlines():
        name = line.split()[0] if line.split() else ""
        parts = name.split("-")
        if len(parts) < 4 or parts[0] != "pbxfwt" or parts[2] != "e2e" or not parts[1].isdigit():
            continue
        if Path(f"/proc/{parts[1]}").exists():
            continue  # its run is alive
        for pid in subprocess.run(
            ["ip", "netns", "pids", name], capture_output=True, text=True, check=False
        ).stdout.split():
            with contextlib.suppress(ProcessLookupError, ValueError):
                os.kill(int(pid), signal.SIGKILL)
        subprocess.run(["ip", "netns", "del", name], check=False, capture_output=True)


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


@pytest.fixture(scope="package")
def pbx_lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PbxLab]:
    SUMMARY.started = time.monotonic()
    _require_tools()
    _remove_stale_namespaces()
    host_before = nft_ruleset() if kernel_available() is None else None
    chroot, lock = ensure_chroot()
    SUMMARY.fact(
        "chroot",
        f"{'built' if chroot.built else 'cached'} in {chroot.seconds:.0f} s ({chroot.version})",
    )
    lab = Lab("e2e")
    asterisk: Asterisk | None = None
    # A SIGTERM (a CI timeout) unwinds like Ctrl-C, so the teardown below runs.
    previous = signal.signal(signal.SIGTERM, _interrupt)
    try:
        Asterisk(chroot.root, "none").kill_leftovers()
        pbx, office, inet = lab.namespace("pbx"), lab.namespace("office"), lab.namespace("inet")
        lab.link(pbx, "lan0", office, "up0")
        lab.addr(pbx, "lan0", f"{PBX_LAN}/24")
        for a in (PHONES, STALE_PHONE, OFFICE_SELFTEST):
            lab.addr(office, "up0", f"{a}/24")
        lab.exec(inet, "ip", "link", "add", "br0", "type", "bridge")
        lab.exec(inet, "ip", "link", "set", "br0", "up")
        lab.link(pbx, "wan0", inet, "p-pbx")
        lab.exec(inet, "ip", "link", "set", "p-pbx", "master", "br0")
        lab.addr(pbx, "wan0", f"{PBX_WAN}/24")
        for a in (INET_SELFTEST, *(ATTACKERS[n] for n in ATTACKERS if n not in HOSTS)):
            lab.addr(inet, "br0", f"{a}/24")
        hosts = {}
        for name in HOSTS:
            host = hosts[name] = lab.namespace(name)
            lab.link(host, "eth0", inet, f"p-{name}")
            lab.exec(inet, "ip", "link", "set", f"p-{name}", "master", "br0")
            lab.addr(host, "eth0", f"{ATTACKERS[name]}/24")
        asterisk = Asterisk(chroot.root, pbx)
        asterisk.start()
        SUMMARY.fact("Asterisk start", f"{asterisk.started_seconds:.1f} s")
        yield PbxLab(
            lab, chroot, asterisk, pbx, office, inet, hosts, tmp_path_factory.mktemp("e2e")
        )
    finally:
        if asterisk is not None:
            asterisk.stop()
        lab.close()
        unmount_all(chroot.root)
        lock.__exit__(None, None, None)
        signal.signal(signal.SIGTERM, previous)
        SUMMARY.finished = time.monotonic()
    if host_before is not None:
        assert nft_ruleset() == host_before, "the host's nftables ruleset changed during e2e"


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "e2e: end to end against a real Asterisk in namespaces (root, network)"
    )


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if SUMMARY.empty():
        return
    text = SUMMARY.save()
    terminalreporter.section("pbxfw end-to-end summary")
    for line in text.splitlines():
        terminalreporter.write_line(line)
