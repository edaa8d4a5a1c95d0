"""The real agent, a real log file, real packets in namespaces (issue 5 acceptance).

An "Internet" client fails to authenticate ``ips_maxretry`` times: its SIP
traffic, an established UDP flow included, is dropped within 1 s while its
WEB access still works; 50 failures from a never-block network ban nothing;
after SIGKILL of the agent and deletion of the table the ban is back within
2 s of the restart; ``bans rm`` reopens the address within 1 s.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.agent.agent_process import PBXFW as PBXFW  # other kernel tests import it from here
from tests.agent.agent_process import start_agent, stop_agent
from tests.agent.agent_process import wait_until as wait_until
from tests.kernel.lab import Lab, Listener, Probe, require_kernel

PBX = "10.78.2.1"
ATTACKER = "198.51.100.66"
OFFICE = "10.78.9.10"  # in a never-block network

pytestmark = pytest.mark.kernel


@dataclass
class Env:
    lab: Lab
    pbx: str
    inet: str
    listener: Listener
    tmp: Path
    #: the database URL (SQLite file or PostgreSQL: tests/conftest.py)
    db: str

    def pbxfw(self, *args: str) -> subprocess.CompletedProcess[str]:
        # The state folder a SQLite database has beside it, for PostgreSQL too.
        environ = {**os.environ, "PBXFW_STATE_DIR": str(self.tmp / "state")}
        return subprocess.run(
            [PBXFW, *args, "--db", self.db], capture_output=True, text=True, timeout=60, env=environ
        )

    def agent(self) -> subprocess.Popen[str]:
        return start_agent(self.pbx, self.db, self.tmp)

    def banned(self) -> str:
        return self.lab.nft(self.pbx, "list", "set", "inet", "pbxfw", "ban_asterisk_v4")

    def fail(self, source: str, count: int) -> None:
        """Append ``count`` PJSIP failures from ``source``: one NOTICE line in
        messages and one SECURITY line in security_log for each, as Asterisk does."""
        stamp = time.strftime("%Y-%m-%d %H:%M:%S")
        with (
            open(self.tmp / "messages", "a") as messages,
            open(self.tmp / "security_log", "a") as security,
        ):
            for _ in range(count):
                messages.write(
                    f"[{stamp}] NOTICE[1] res_pjsip/pjsip_distributor.c: Request 'REGISTER' from "
                    f"'<sip:101@{PBX}>' failed for '{source}:5060' (callid: same-callid) - Failed to authenticate\n"
                )
                security.write(
                    f'[{stamp}] SECURITY[2] res_security_log.c: SecurityEvent="ChallengeResponseFailed",'
                    f'EventTV="x",Severity="Error",Service="PJSIP",EventVersion="1",AccountID="101",'
                    f'SessionID="same-callid",LocalAddress="IPV4/UDP/{PBX}/5060",'
                    f'RemoteAddress="IPV4/UDP/{source}/5060",Challenge="c",Response="r",ExpectedResponse=""\n'
                )


@pytest.fixture
def env(tmp_path: Path, db_url: str) -> Iterator[Env]:
    require_kernel()
    with Lab(f"ag{os.getpid() % 10000}") as lab:
        pbx = lab.namespace("pbx")
        inet = lab.namespace("inet")
        lab.link(pbx, "v-pbx", inet, "v-inet")
        lab.addr(pbx, "v-pbx", f"{PBX}/24")
        lab.addr(pbx, "v-pbx", "10.78.9.1/24")
        lab.addr(inet, "v-inet", "10.78.2.2/24")
        for source in (ATTACKER, OFFICE):
            lab.addr(inet, "v-inet", f"{source}/32")
        lab.route(pbx, f"{ATTACKER}/32", "v-pbx")
        listener = lab.listen(pbx, tcp=[80], udp=[5060])
        e = Env(lab, pbx, inet, listener, tmp_path, db_url)
        for path in ("messages", "security_log"):
            (tmp_path / path).touch()
        assert e.pbxfw("init").returncode == 0
        settings = [
            "ips_maxretry=5",
            f"log_asterisk_messages={tmp_path / 'messages'}",
            f"log_asterisk_security={tmp_path / 'security_log'}",
            f"log_ssh={tmp_path / 'auth.log'}",
            f"log_web={tmp_path / 'nginx.log'}",
            "asterisk_config_dir=",
            "firewall_enabled=true",
        ]
        assert e.pbxfw("settings", "set", *settings).returncode == 0
        assert e.pbxfw("network", "set", "Internet", "--allow", "web").returncode == 0
        assert (
            e.pbxfw(
                "network", "add", "Office", "10.78.9.0/24", "--allow", "sip,web", "--never-block"
            ).returncode
            == 0
        )
        yield e


def test_ban_drops_sip_keeps_web_survives_restart_and_lifts(env: Env) -> None:
    agent = env.agent()
    try:
        assert (
            wait_until(
                lambda: (
                    "ban_asterisk_v4" in env.lab.nft(env.pbx, "list", "tables")
                    or "pbxfw" in env.lab.nft(env.pbx, "list", "tables")
                ),
                10,
            )
            is not None
        )
        time.sleep(0.3)
        flow = Probe("udp", ATTACKER, PBX, 5060, sport=40001)
        web = Probe("tcp", ATTACKER, PBX, 80)
        assert env.lab.probe(env.inet, [flow, web]) == {flow: "open", web: "open"}

        # maxretry - 1 failures (each written twice): no ban.
        env.fail(ATTACKER, 4)
        time.sleep(0.5)
        assert ATTACKER not in env.banned()

        env.fail(ATTACKER, 1)
        took = wait_until(lambda: ATTACKER in env.banned(), 1.0)
        assert took is not None, "not banned within 1 s"
        answers = env.lab.probe(env.inet, [flow, web])
        assert answers == {flow: "timeout", web: "open"}, answers

        # A never-block network: 50 failures ban nothing.
        env.fail(OFFICE, 50)
        time.sleep(0.5)
        assert OFFICE not in env.banned()
        bans = json.loads(env.pbxfw("bans", "list", "--json").stdout)
        assert [b["address"] for b in bans] == [ATTACKER]
        status = json.loads(env.pbxfw("ips", "status", "--json").stdout)
        assert status["jails"]["asterisk"]["whitelisted"] >= 50

        # SIGKILL, table deleted: the ban is back within 2 s of the restart.
        agent.send_signal(signal.SIGKILL)
        agent.wait(5)
        env.lab.nft(env.pbx, "delete", "table", "inet", "pbxfw")
        agent = env.agent()
        took = wait_until(
            lambda: "pbxfw" in env.lab.nft(env.pbx, "list", "tables") and ATTACKER in env.banned(),
            2.0,
        )
        assert took is not None, "ban not restored within 2 s"

        # bans rm reopens the address within 1 s.
        assert env.pbxfw("bans", "rm", ATTACKER).returncode == 0
        took = wait_until(lambda: ATTACKER not in env.banned(), 1.0)
        assert took is not None, "not unbanned within 1 s"
        assert env.lab.probe(env.inet, [flow]) == {flow: "open"}
    finally:
        stop_agent(agent)
        print((env.tmp / "agent.log").read_text()[-3000:])
