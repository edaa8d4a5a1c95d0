"""A real agent, a real feed server, real packets in namespaces (issue 17 acceptance).

The feed lists an attacker, a never-block network, ``0.0.0.0/0`` and the
PBX's own address: only the attacker lands in the kernel (the rest is
refused and counted), its SIP is dropped while its WEB passes (the feed's
scope is sip), the never-block office still reaches SIP, and ``pbxfw
check`` says the same. A broken answer (HTTP 500) keeps the entries and is
reported by ``feed list``; a new list changes only its difference; after
SIGKILL, with the server still broken, the restarted agent loads the kept
list again; ``feed rm`` takes the feed's sets out of the kernel.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.agent.agent_process import PBXFW, start_agent, stop_agent, wait_until
from tests.agent.feed_server import FeedServer, Page
from tests.kernel.lab import Lab, Probe, require_kernel

PBX = "10.78.2.1"
ATTACKER = "198.51.100.66"
SECOND = "198.51.100.67"
OFFICE = "10.78.2.50"  # in a never-block network, on the PBX's link

pytestmark = pytest.mark.kernel

LIST = f"""# a VoIP blocklist
{ATTACKER}
10.78.2.50     ; in the office: never-block, refused
0.0.0.0/0      # too broad, refused
{PBX}          # the PBX itself, refused
"""


@dataclass
class Env:
    lab: Lab
    pbx: str
    inet: str
    tmp: Path
    db: str
    server: FeedServer

    def pbxfw(self, *args: str) -> subprocess.CompletedProcess[str]:
        environ = {**os.environ, "PBXFW_STATE_DIR": str(self.tmp / "state")}
        return subprocess.run(
            [PBXFW, *args, "--db", self.db], capture_output=True, text=True, timeout=60, env=environ
        )

    def feed_set(self) -> str:
        # No set yet (the table is loaded before the first fetch lands): "".
        argv = ("nft", "list", "set", "inet", "pbxfw", "feed_voip_v4")
        return self.lab.exec(self.pbx, *argv, check=False)

    def status(self) -> dict[str, object]:
        [feed] = json.loads(self.pbxfw("feed", "list", "--json").stdout)
        return dict(feed["status"][0]) if feed["status"] else {}


@pytest.fixture
def env(tmp_path: Path, db_url: str) -> Iterator[Env]:
    require_kernel()
    with FeedServer() as server, Lab(f"fd{os.getpid() % 10000}") as lab:
        pbx, inet = lab.namespace("pbx"), lab.namespace("inet")
        lab.link(pbx, "v-pbx", inet, "v-inet")
        lab.addr(pbx, "v-pbx", f"{PBX}/24")
        lab.addr(inet, "v-inet", "10.78.2.2/24")
        for source in (ATTACKER, SECOND, OFFICE):
            lab.addr(inet, "v-inet", f"{source}/32")
        lab.route(pbx, "198.51.100.0/24", "v-pbx")
        lab.listen(pbx, tcp=[80], udp=[5060])
        e = Env(lab, pbx, inet, tmp_path, db_url, server)
        assert e.pbxfw("init").returncode == 0
        settings = ["asterisk_config_dir=", "firewall_enabled=true"]
        for name in ("log_asterisk_messages", "log_asterisk_security", "log_ssh", "log_web"):
            (tmp_path / name).touch()
            settings.append(f"{name}={tmp_path / name}")
        assert e.pbxfw("settings", "set", *settings).returncode == 0
        assert e.pbxfw("network", "set", "Internet", "--allow", "web").returncode == 0
        office = (
            "network",
            "add",
            "Office",
            "10.78.2.32/27",
            "--allow",
            "sip,web",
            "--never-block",
        )
        assert e.pbxfw(*office).returncode == 0
        server.serve("/voip.txt", Page(LIST.encode(), etag='"1"'))
        added = e.pbxfw("feed", "add", "voip", server.url("/voip.txt"), "--scope", "sip")
        assert added.returncode == 0, added.stderr
        yield e


def test_a_feed_drops_its_scope_keeps_never_block_and_survives_failures(env: Env) -> None:
    agent = start_agent(env.pbx, env.db, env.tmp)
    try:
        took = wait_until(lambda: ATTACKER in env.feed_set(), 15, step=0.1)
        assert took is not None, "the feed's entry never reached the kernel"
        status = env.status()
        assert status["entries"] == 1
        assert status["refused"] == {"never-block": 1, "own address": 1, "too broad": 1}
        assert status["error"] == ""
        sip = Probe("udp", ATTACKER, PBX, 5060)
        web = Probe("tcp", ATTACKER, PBX, 80)
        office = Probe("udp", OFFICE, PBX, 5060)
        other = Probe("udp", SECOND, PBX, 5060)
        got = env.lab.probe(env.inet, [sip, web, office, other])
        assert got == {sip: "timeout", web: "open", office: "open", other: "open"}
        # check agrees with the packets.
        for probe, service in ((sip, "sip"), (web, "web"), (office, "sip"), (other, "sip")):
            verdict = json.loads(env.pbxfw("check", probe.src, service, "--json").stdout)
            assert (verdict["verdict"] == "allow") == (got[probe] == "open"), verdict
        blocked = json.loads(env.pbxfw("check", ATTACKER, "sip", "--json").stdout)
        assert blocked["feed"] == {"name": "voip", "entry": ATTACKER}
        listed = json.loads(env.pbxfw("bans", "list", "--origin", "feed:voip", "--json").stdout)
        assert [e["address"] for e in listed] == [ATTACKER]

        # A broken upstream: the entries stay, feed list says what happened.
        env.server.serve("/voip.txt", Page(b"oops", status=500))
        assert env.pbxfw("feed", "update", "voip").returncode == 0
        took = wait_until(lambda: "HTTP 500" in str(env.status().get("error")), 15, step=0.1)
        assert took is not None, env.status()
        assert ATTACKER in env.feed_set()
        assert env.lab.probe(env.inet, [sip]) == {sip: "timeout"}

        # A new list: only the difference moves.
        env.server.serve("/voip.txt", Page((LIST + f"{SECOND}\n").encode(), etag='"2"'))
        assert env.pbxfw("feed", "update").returncode == 0
        took = wait_until(lambda: SECOND in env.feed_set(), 15, step=0.1)
        assert took is not None, env.status()
        assert ATTACKER in env.feed_set()
        assert env.status()["entries"] == 2
        log = (env.tmp / "agent.log").read_text()
        assert "feed voip: 1 elements changed in the kernel" in log

        # SIGKILL and a restart while the server is broken: the kept list is loaded.
        env.server.serve("/voip.txt", Page(b"oops", status=500))
        agent.send_signal(signal.SIGKILL)
        agent.wait(5)
        env.lab.nft(env.pbx, "delete", "table", "inet", "pbxfw")
        agent = start_agent(env.pbx, env.db, env.tmp)
        took = wait_until(
            lambda: (
                "pbxfw" in env.lab.nft(env.pbx, "list", "tables")
                and SECOND in env.feed_set()
                and ATTACKER in env.feed_set()
            ),
            15,
            step=0.1,
        )
        assert took is not None, "the kept list was not loaded after the restart"
        assert env.lab.probe(env.inet, [other, office]) == {other: "timeout", office: "open"}

        # feed rm: its sets and drops leave the kernel.
        assert env.pbxfw("feed", "rm", "voip").returncode == 0
        took = wait_until(
            lambda: "feed_voip" not in env.lab.nft(env.pbx, "list", "table", "inet", "pbxfw"),
            15,
            step=0.1,
        )
        assert took is not None, "the removed feed's sets stayed"
        assert env.lab.probe(env.inet, [sip, other]) == {sip: "open", other: "open"}
    finally:
        stop_agent(agent)
        print((env.tmp / "agent.log").read_text()[-3000:])
