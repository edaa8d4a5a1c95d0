"""A real Prometheus scrapes a real agent (issue 19 acceptance).

``pbxfw agent --netns <lab> --metrics 127.0.0.1:PORT`` keeps a namespace's
table; Debian's ``prometheus`` binary, started here on loopback with a
temporary configuration and storage folder (never the distribution's
service), scrapes it every second with the scrape configuration and the
alert rules of docs/observability.md (checked by ``promtool`` first). An
attack is written to the agent's log (failures → a ban); Prometheus's HTTP
API then answers the pbxfw series of that ban and of the failures, the
agent is up, and a packet from the banned address shows in the drop
counters. Every wait is bounded; both processes are stopped at the end.
"""

from __future__ import annotations

import json
import re
import shutil
import socket
import subprocess
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.agent.agent_process import run_pbxfw, start_agent, stop_agent, wait_until
from tests.kernel.lab import Lab, Probe, require_kernel

ROOT = Path(__file__).resolve().parents[2]
DOCS = ROOT / "docs" / "observability.md"
PBX = "10.79.2.1"
ATTACKER = "198.51.100.77"

pytestmark = pytest.mark.kernel


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def docs_block(name: str) -> str:
    """The fenced YAML block of docs/observability.md that follows the marker
    ``<!-- name -->`` (so the test runs what the documentation says)."""
    text = DOCS.read_text()
    found = re.search(rf"<!-- {name} -->\s*```yaml\n(.*?)```", text, re.S)
    assert found, f"no {name} block in {DOCS}"
    return found.group(1)


def get_json(url: str) -> dict[str, object]:
    with urllib.request.urlopen(url, timeout=5) as answer:
        return json.loads(answer.read())  # type: ignore[no-any-return]


class Prometheus:
    """Debian's prometheus binary on a loopback port, scraping ``target``."""

    def __init__(self, folder: Path, target: str) -> None:
        binary = shutil.which("prometheus")
        if binary is None:
            pytest.fail("prometheus is not installed (scripts/install-system.sh installs it)")
        folder.mkdir()
        rules = folder / "pbxfw-rules.yml"
        rules.write_text(docs_block("alert-rules"))
        checked = subprocess.run(
            ["promtool", "check", "rules", str(rules)], capture_output=True, text=True, timeout=30
        )
        assert checked.returncode == 0, checked.stdout + checked.stderr
        scrape = docs_block("scrape-agent").replace("127.0.0.1:9151", target)
        config = folder / "prometheus.yml"
        config.write_text(
            "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\n  evaluation_interval: 1s\n"
            f"rule_files:\n  - {rules}\n{scrape}"
        )
        checked = subprocess.run(
            ["promtool", "check", "config", str(config)], capture_output=True, text=True, timeout=30
        )
        assert checked.returncode == 0, checked.stdout + checked.stderr
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.output = (folder / "prometheus.log").open("wb")
        self.proc = subprocess.Popen(
            [
                binary,
                f"--config.file={config}",
                f"--storage.tsdb.path={folder / 'data'}",
                f"--web.listen-address=127.0.0.1:{self.port}",
            ],
            stdout=self.output,
            stderr=subprocess.STDOUT,
        )
        ready = wait_until(self._ready, 30, step=0.2)
        if ready is None:
            self.stop()
            raise AssertionError("prometheus did not start:\n" + self.log())

    def _ready(self) -> bool:
        try:
            with urllib.request.urlopen(self.url + "/-/ready", timeout=1) as answer:
                return bool(answer.status == 200)
        except OSError:
            return self.proc.poll() is not None  # ended: stop waiting, fail below

    def log(self) -> str:
        return Path(self.output.name).read_text(errors="replace")[-3000:]

    def query(self, expression: str) -> list[tuple[dict[str, str], float]]:
        """The instant vector of ``expression``: (labels, value) of each series."""
        url = self.url + "/api/v1/query?" + urllib.parse.urlencode({"query": expression})
        answer = get_json(url)
        assert answer["status"] == "success", answer
        data = answer["data"]
        assert isinstance(data, dict)
        return [(r["metric"], float(r["value"][1])) for r in data["result"]]

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(5)
        self.output.close()


@pytest.fixture
def lab() -> Iterator[tuple[Lab, str, str]]:
    require_kernel()
    with Lab("prom") as lab:
        pbx, inet = lab.namespace("pbx"), lab.namespace("inet")
        lab.link(pbx, "v-pbx", inet, "v-inet")
        lab.addr(pbx, "v-pbx", f"{PBX}/24")
        lab.addr(inet, "v-inet", "10.79.2.2/24")
        lab.addr(inet, "v-inet", f"{ATTACKER}/32")
        lab.route(pbx, f"{ATTACKER}/32", "v-pbx")
        yield lab, pbx, inet


def test_prometheus_scrapes_the_agent_and_sees_the_attack(
    lab: tuple[Lab, str, str], tmp_path: Path
) -> None:
    the_lab, pbx, inet = lab
    db = tmp_path / "pbxfw.db"
    messages = tmp_path / "messages"
    messages.touch()
    assert run_pbxfw(db, "init").returncode == 0
    settings = [
        "ips_maxretry=3",
        f"log_asterisk_messages={messages}",
        f"log_asterisk_security={tmp_path / 'security_log'}",
        f"log_ssh={tmp_path / 'auth.log'}",
        f"log_web={tmp_path / 'nginx.log'}",
        "asterisk_config_dir=",
        "firewall_enabled=true",
    ]
    assert run_pbxfw(db, "settings", "set", *settings).returncode == 0
    assert run_pbxfw(db, "network", "set", "Internet", "--allow", "sip,web").returncode == 0
    port = free_port()
    agent = start_agent(pbx, db, tmp_path, "--metrics", f"127.0.0.1:{port}", "--node", "lab1")
    prometheus: Prometheus | None = None
    try:
        metrics = f"http://127.0.0.1:{port}/metrics"

        def serving() -> bool:
            try:
                with urllib.request.urlopen(metrics, timeout=1) as answer:
                    return b"pbxfw_agent_up" in answer.read()
            except OSError:
                return agent.poll() is not None

        assert wait_until(serving, 20, step=0.1) is not None
        assert agent.poll() is None, (tmp_path / "agent.log").read_text()
        prometheus = Prometheus(tmp_path / "prometheus", f"127.0.0.1:{port}")

        # The attack: three failed registrations (ips_maxretry) → a ban.
        stamp = time.strftime("%Y-%m-%d %H:%M:%S")
        with messages.open("a") as f:
            for n in range(3):
                f.write(
                    f"[{stamp}] NOTICE[1] res_pjsip/pjsip_distributor.c: Request 'REGISTER' from "
                    f"'<sip:10{n}@{PBX}>' failed for '{ATTACKER}:5060' (callid: c{n}) - "
                    "Failed to authenticate\n"
                )
        banned = wait_until(
            lambda: ATTACKER in the_lab.nft(pbx, "list", "set", "inet", "pbxfw", "ban_asterisk_v4"),
            10,
        )
        assert banned is not None, (tmp_path / "agent.log").read_text()[-3000:]
        # A SIP packet from the banned address: dropped, and counted.
        probe = Probe("udp", ATTACKER, PBX, 5060)
        assert the_lab.probe(inet, [probe]) == {probe: "timeout"}

        def series(expression: str) -> list[tuple[dict[str, str], float]]:
            found: list[tuple[dict[str, str], float]] = []

            def answered() -> bool:
                found[:] = prometheus.query(expression) if prometheus else []
                return bool(found)

            assert wait_until(answered, 30, step=0.5) is not None, (
                f"Prometheus has no {expression}:\n" + (prometheus.log() if prometheus else "")
            )
            return found

        made = series('pbxfw_bans_made_total{jail="asterisk",origin="jail:asterisk"} >= 1')
        assert made[0][0]["node"] == "lab1" and made[0][0]["job"] == "pbxfw-agent"
        failures = series('sum(pbxfw_failures_total{jail="asterisk"}) >= 3')
        assert failures[0][1] >= 3
        assert series('pbxfw_bans_active{set="ban_asterisk_v4"} == 1')
        assert series('pbxfw_dropped_packets_total{reason="jail",jail="asterisk"} >= 1')
        assert series('pbxfw_agent_up{node="lab1"} == 1')
        assert series('up{job="pbxfw-agent"} == 1')
        # The documented alert rules were loaded and are evaluated.
        rules = get_json(prometheus.url + "/api/v1/rules")
        names = {
            rule["name"]
            for group in rules["data"]["groups"]  # type: ignore[index]
            for rule in group["rules"]
        }
        assert {"PbxfwAgentDown", "PbxfwApplyFailed", "PbxfwBanStorm"} <= names
    finally:
        if prometheus is not None:
            prometheus.stop()
        stop_agent(agent)
