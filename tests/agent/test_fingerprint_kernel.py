"""Scanner fingerprints with the real agent and real packets in namespaces (issue 18).

A SIP request with a scanner's User-Agent is dropped before the PBX's
socket sees it and its sender is banned in the ``asterisk`` jail with
origin ``fingerprint`` within 1 s; a phone's User-Agent passes; a
never-block source is never judged; with the agent stopped (SIGTERM: its
table is gone; SIGKILL: its table stays, the queue's bypass answers) SIP
still flows (fail-open). The fingerprint list is edited with the real CLI.
"""

from __future__ import annotations

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

from tests.agent.agent_process import PBXFW, start_agent, stop_agent, wait_until
from tests.kernel.lab import Lab, Listener, require_kernel

PBX = "10.78.3.1"
SCANNERS = ["198.51.100.71", "198.51.100.72", "198.51.100.73", "198.51.100.74"]
PHONE = "198.51.100.80"
OFFICE = "10.78.8.10"  # never-block

pytestmark = pytest.mark.kernel

_SEND = r"""
import socket, sys
src, dst, ua = sys.argv[1], sys.argv[2], sys.argv[3]
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind((src, 0))
port = s.getsockname()[1]
msg = (
    f"OPTIONS sip:100@{dst} SIP/2.0\r\n"
    f"Via: SIP/2.0/UDP {src}:{port};branch=z9hG4bK-1;rport\r\n"
    "Max-Forwards: 70\r\n"
    f"To: \"x\"<sip:100@{dst}>\r\n"
    f"From: \"x\"<sip:100@{dst}>;tag=1\r\n"
    f"User-Agent: {ua}\r\n"
    "Call-ID: 1234\r\n"
    "CSeq: 1 OPTIONS\r\n"
    "Content-Length: 0\r\n\r\n"
)
s.sendto(msg.encode(), (dst, 5060))
"""


@dataclass
class Env:
    lab: Lab
    pbx: str
    inet: str
    listener: Listener
    tmp: Path
    db: str

    def pbxfw(self, *args: str) -> subprocess.CompletedProcess[str]:
        environ = {**os.environ, "PBXFW_STATE_DIR": str(self.tmp / "state")}
        return subprocess.run(
            [PBXFW, *args, "--db", self.db], capture_output=True, text=True, timeout=60, env=environ
        )

    def send(self, source: str, user_agent: str) -> None:
        self.lab.exec(self.inet, sys.executable, "-c", _SEND, source, PBX, user_agent)

    def received(self, source: str) -> int:
        return self.listener.counts().get(f"5060 {source}", 0)

    def banned(self) -> str:
        return self.lab.nft(self.pbx, "list", "set", "inet", "pbxfw", "ban_asterisk_v4")

    def checking(self) -> int:
        """How many times an agent bound the queue (its log says so)."""
        return (self.tmp / "agent.log").read_text().count("checking new SIP flows")

    def queue_ready(self) -> bool:
        out = self.lab.exec(
            self.pbx, "nft", "list", "table", "inet", "sip_fingerprint", check=False
        )
        return "queue" in out


@pytest.fixture
def env(tmp_path: Path, db_url: str) -> Iterator[Env]:
    require_kernel()
    with Lab(f"fp{os.getpid() % 10000}") as lab:
        pbx, inet = lab.namespace("pbx"), lab.namespace("inet")
        lab.link(pbx, "v-pbx", inet, "v-inet")
        lab.addr(pbx, "v-pbx", f"{PBX}/24")
        lab.addr(pbx, "v-pbx", "10.78.8.1/24")
        lab.addr(inet, "v-inet", "10.78.3.2/24")
        for source in (*SCANNERS, PHONE, OFFICE):
            lab.addr(inet, "v-inet", f"{source}/32")
            if not source.startswith("10.78.8."):
                lab.route(pbx, f"{source}/32", "v-pbx")
        listener = lab.listen(pbx, udp=[5060])
        e = Env(lab, pbx, inet, listener, tmp_path, db_url)
        assert e.pbxfw("init").returncode == 0
        settings = [
            f"log_asterisk_messages={tmp_path / 'messages'}",
            f"log_asterisk_security={tmp_path / 'security_log'}",
            f"log_ssh={tmp_path / 'auth.log'}",
            f"log_web={tmp_path / 'nginx.log'}",
            "asterisk_config_dir=",
            "firewall_enabled=true",
        ]
        assert e.pbxfw("settings", "set", *settings).returncode == 0
        assert e.pbxfw("network", "set", "Internet", "--allow", "sip").returncode == 0
        office = ("network", "add", "Office", "10.78.8.0/24", "--allow", "sip", "--never-block")
        assert e.pbxfw(*office).returncode == 0
        yield e


def test_a_scanner_is_dropped_and_banned_a_phone_passes_and_stopped_agent_fails_open(
    env: Env,
) -> None:
    # An administrator's own pattern, added with the CLI, counts like a shipped one.
    added = env.pbxfw("fingerprint", "add", "EvilDialer")
    assert added.returncode == 0, added.stderr
    agent = start_agent(env.pbx, env.db, env.tmp)
    try:
        assert wait_until(env.queue_ready, 10) is not None, (env.tmp / "agent.log").read_text()

        env.send(PHONE, "Yealink SIP-T46S 66.86.0.15")
        assert wait_until(lambda: env.received(PHONE) == 1, 2) is not None

        started = time.monotonic()
        env.send(SCANNERS[0], "friendly-scanner")
        took = wait_until(lambda: SCANNERS[0] in env.banned(), 2)
        assert took is not None and time.monotonic() - started < 1.0, "not banned within 1 s"
        env.send(SCANNERS[1], "Evildialer/1.0")  # any case
        assert wait_until(lambda: SCANNERS[1] in env.banned(), 1) is not None
        time.sleep(0.2)
        assert env.received(SCANNERS[0]) == 0 and env.received(SCANNERS[1]) == 0

        bans = {b["address"]: b for b in json.loads(env.pbxfw("bans", "list", "--json").stdout)}
        assert bans[SCANNERS[0]]["origin"] == "fingerprint"
        assert bans[SCANNERS[0]]["jail"] == "asterisk"
        assert "friendly-scanner" in bans[SCANNERS[0]]["reason"]

        # A never-block source is not judged: its packet goes on.
        env.send(OFFICE, "friendly-scanner")
        assert wait_until(lambda: env.received(OFFICE) == 1, 2) is not None
        assert OFFICE not in env.banned()

        # SIGKILL: the table stays, nobody answers the queue: bypass accepts.
        agent.send_signal(signal.SIGKILL)
        agent.wait(5)
        assert env.queue_ready()
        env.send(SCANNERS[2], "friendly-scanner")
        assert wait_until(lambda: env.received(SCANNERS[2]) == 1, 2) is not None

        # Restarted, then stopped (SIGTERM): the table goes, SIP flows.
        agent = start_agent(env.pbx, env.db, env.tmp)
        assert wait_until(lambda: env.checking() == 2, 10) is not None
        stop_agent(agent)
        assert not env.queue_ready()
        env.send(SCANNERS[3], "friendly-scanner")
        assert wait_until(lambda: env.received(SCANNERS[3]) == 1, 2) is not None
    finally:
        stop_agent(agent)


def test_a_removed_fingerprint_is_no_longer_dropped(env: Env) -> None:
    assert env.pbxfw("fingerprint", "rm", "friendly-scanner").returncode == 0
    agent = start_agent(env.pbx, env.db, env.tmp)
    try:
        assert wait_until(env.queue_ready, 10) is not None
        env.send(SCANNERS[0], "friendly-scanner")
        assert wait_until(lambda: env.received(SCANNERS[0]) == 1, 2) is not None
        # Added back while the agent runs: it reads the list again within seconds.
        assert env.pbxfw("fingerprint", "add", "friendly-scanner").returncode == 0
        time.sleep(2.5)
        env.send(SCANNERS[1], "friendly-scanner")
        assert wait_until(lambda: SCANNERS[1] in env.banned(), 1) is not None
        assert env.received(SCANNERS[1]) == 0
    finally:
        stop_agent(agent)


def test_untracked_sip_is_judged_once_per_source(env: Env) -> None:
    """SIP that pbxfw's early chain takes out of connection tracking (helper
    "early", issue 18) has no flow to remember: the first packet of each
    source is judged, the source is then trusted for 60 s. The ``notrack``
    rule here is the test's own table (firewall off: the input chain then
    decides untracked packets by the bans alone)."""
    assert env.pbxfw("settings", "set", "firewall_enabled=false").returncode == 0
    env.lab.nft(
        env.pbx,
        "-f",
        "-",
        input="table inet test_notrack {\n chain pre {\n"
        "  type filter hook prerouting priority raw; policy accept;\n"
        "  udp dport 5060 notrack\n }\n}\n",
    )
    agent = start_agent(env.pbx, env.db, env.tmp)
    try:
        assert wait_until(env.queue_ready, 10) is not None
        env.send(PHONE, "Yealink SIP-T46S 66.86.0.15")
        assert wait_until(lambda: env.received(PHONE) == 1, 2) is not None
        env.send(SCANNERS[0], "friendly-scanner")
        assert wait_until(lambda: SCANNERS[0] in env.banned(), 1) is not None
        time.sleep(0.2)
        assert env.received(SCANNERS[0]) == 0
        seen = env.lab.nft(env.pbx, "list", "set", "inet", "sip_fingerprint", "seen_v4")
        assert PHONE in seen and SCANNERS[0] in seen
        # The phone's address was judged a moment ago: not queued again.
        env.send(PHONE, "friendly-scanner")
        assert wait_until(lambda: env.received(PHONE) == 2, 2) is not None
        assert PHONE not in env.banned()
    finally:
        stop_agent(agent)
