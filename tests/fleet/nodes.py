"""Real ``pbxfw agent`` processes as the nodes of one fleet (tests and bench).

Each node is a network namespace with its own nftables, its own state
folder, and its own Asterisk logs: the site's configuration names one log
path for every node (``LOGS``), so each agent runs in a mount namespace of
its own where the node's folder is bound onto that path, as each PBX has its
own /var/log/asterisk. All agents use one PostgreSQL database.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from pbxfw.agent.spool import SPOOL_NAME, scan
from tests.kernel.lab import Lab

__all__ = ["PBXFW", "Fleet", "Node", "failure_lines", "listening", "start_listening"]

PBXFW = str(Path(sys.executable).with_name("pbxfw"))
SET = "ban_asterisk_v4"


def failure_lines(source: str, count: int) -> tuple[str, str]:
    """``count`` PJSIP failures from ``source`` as Asterisk writes them: one
    NOTICE line in messages and one SECURITY line in security_log each."""
    stamp = time.strftime("%Y-%m-%d %H:%M:%S")
    notice = (
        f"[{stamp}] NOTICE[1] res_pjsip/pjsip_distributor.c: Request 'REGISTER' from "
        f"'<sip:101@10.0.0.1>' failed for '{source}:5060' (callid: c-{source}) - "
        "Failed to authenticate\n"
    )
    security = (
        f'[{stamp}] SECURITY[2] res_security_log.c: SecurityEvent="ChallengeResponseFailed",'
        f'EventTV="x",Severity="Error",Service="PJSIP",EventVersion="1",AccountID="101",'
        f'SessionID="c-{source}",LocalAddress="IPV4/UDP/10.0.0.1/5060",'
        f'RemoteAddress="IPV4/UDP/{source}/5060",Challenge="c",Response="r",ExpectedResponse=""\n'
    )
    return notice * count, security * count


@dataclass
class Node:
    name: str
    ns: str
    folder: Path
    proc: subprocess.Popen[bytes] | None = None

    @property
    def log(self) -> Path:
        return self.folder / "agent.log"

    @property
    def spool(self) -> Path:
        """The agent's local ban spool (agent.spool) in its state folder."""
        return self.folder / "state" / f"netns-{self.ns}" / SPOOL_NAME

    def spooled(self) -> set[str]:
        """The addresses of the bans waiting in the spool (not acknowledged)."""
        if not self.spool.exists():
            return set()
        pending = scan(self.spool.read_bytes()).pending.values()
        return {str(record.ban.subnet.network_address) for record in pending}

    def fail(self, source: str, count: int) -> None:
        """Append ``count`` failures from ``source`` to this node's Asterisk logs."""
        notice, security = failure_lines(source, count)
        with (
            open(self.folder / "logs" / "messages", "a") as messages,
            open(self.folder / "logs" / "security_log", "a") as secure,
        ):
            messages.write(notice)
            secure.write(security)

    def banned(self, set_name: str = SET) -> set[str]:
        """The addresses in this node's kernel ban set ``set_name`` (read from the kernel)."""
        out = subprocess.run(
            ["ip", "netns", "exec", self.ns, "nft", "-j", "list", "set", "inet", "pbxfw", set_name],
            capture_output=True,
            text=True,
            timeout=10,
        )
        if out.returncode != 0:
            return set()
        found: set[str] = set()
        for item in json.loads(out.stdout)["nftables"]:
            for element in item.get("set", {}).get("elem", []):
                value = (
                    element.get("elem", {}).get("val", element)
                    if isinstance(element, dict)
                    else element
                )
                if isinstance(value, str):
                    found.add(value)
                elif isinstance(value, dict) and "prefix" in value:
                    found.add(str(value["prefix"]["addr"]))
        return found

    def set_size(self) -> int:
        """How many elements this node's kernel ban set holds (read from the kernel)."""
        out = subprocess.run(
            ["ip", "netns", "exec", self.ns, "nft", "-j", "list", "set", "inet", "pbxfw", SET],
            capture_output=True,
            text=True,
            timeout=20,
        )
        if out.returncode != 0:
            return 0
        items = json.loads(out.stdout)["nftables"]
        return sum(len(item.get("set", {}).get("elem", [])) for item in items)

    def ruleset(self) -> str:
        return subprocess.run(
            ["ip", "netns", "exec", self.ns, "nft", "list", "table", "inet", "pbxfw"],
            capture_output=True,
            text=True,
            timeout=10,
        ).stdout


@dataclass
class Fleet:
    """Nodes in ``lab`` on the database ``db``; ``folder`` holds their files."""

    lab: Lab
    db: str
    folder: Path
    nodes: list[Node] = field(default_factory=list)

    @property
    def logs(self) -> Path:
        """The log folder the site's configuration names (each agent sees its own)."""
        return self.folder / "logs"

    def pbxfw(
        self, *args: str, env: dict[str, str] | None = None
    ) -> subprocess.CompletedProcess[str]:
        """``pbxfw ARGS --db DB`` (``env``: more environment variables)."""
        environ = {**os.environ, "PBXFW_STATE_DIR": str(self.folder / "cli-state"), **(env or {})}
        return subprocess.run(
            [PBXFW, *args, "--db", self.db], capture_output=True, text=True, timeout=60, env=environ
        )

    def configure(self, maxretry: int = 5, site: str | None = None) -> None:
        """``init`` and the site's settings (``site``: another than ``default``,
        made with ``pbxfw site add`` first): every node reads ``logs``."""
        self.logs.mkdir(parents=True, exist_ok=True)
        chosen = () if site is None else ("--site", site)
        for command in (
            ("init",) if site is None else ("site", "add", site),
            (
                *chosen,
                "settings",
                "set",
                f"ips_maxretry={maxretry}",
                f"log_asterisk_messages={self.logs / 'messages'}",
                f"log_asterisk_security={self.logs / 'security_log'}",
                f"log_ssh={self.logs / 'auth.log'}",
                f"log_web={self.logs / 'nginx.log'}",
                "asterisk_config_dir=",
                "firewall_enabled=true",
            ),
        ):
            result = self.pbxfw(*command)
            assert result.returncode == 0, result.stderr

    def add(self, name: str) -> Node:
        node = Node(name, self.lab.namespace(name), self.folder / name)
        (node.folder / "logs").mkdir(parents=True)
        for path in ("messages", "security_log"):
            (node.folder / "logs" / path).touch()
        self.nodes.append(node)
        return node

    def start(self, node: Node, *, listen: bool = True, site: str | None = None) -> None:
        """Start ``node``'s agent (``listen=False``: ``PBXFW_LISTEN=0``, polling;
        ``site``: its ``PBXFW_SITE``, by default the environment's)."""
        environ = {**os.environ, "PBXFW_LISTEN": "1" if listen else "0"}
        if site is not None:
            environ["PBXFW_SITE"] = site
        bind = 'mount --bind "$1" "$2" && shift 2 && exec "$@"'
        argv = [
            *("unshare", "--mount", "--propagation", "private", "sh", "-c", bind, "sh"),
            str(node.folder / "logs"),
            str(self.logs),
            *(PBXFW, "agent", "--netns", node.ns, "--node", node.name, "--db", self.db),
            *("--state-dir", str(node.folder / "state")),
        ]
        with open(node.log, "ab") as log:
            node.proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, env=environ)

    def stop(self, node: Node) -> None:
        if node.proc is None:
            return
        node.proc.terminate()
        try:
            node.proc.wait(10)
        except subprocess.TimeoutExpired:
            node.proc.kill()
            node.proc.wait(5)
        node.proc = None

    def close(self) -> None:
        """Stop every agent: all are asked at once, then each is waited for."""
        for node in self.nodes:
            if node.proc is not None:
                node.proc.terminate()
        for node in self.nodes:
            self.stop(node)


def listening(node: Node) -> bool:
    """Has ``node``'s agent logged that it listens (PostgreSQL LISTEN)?"""
    return node.log.exists() and "listening for" in node.log.read_text()


def start_listening(
    fleet: Fleet, nodes: list[Node], timeout: float = 15, sites: dict[str, str] | None = None
) -> None:
    """Start ``nodes``' agents (each in its site of ``sites``, node name →
    site; by default the environment's) and wait until each listens
    (``timeout`` seconds each)."""
    for node in nodes:
        fleet.start(node, site=(sites or {}).get(node.name))
    for node in nodes:
        deadline = time.monotonic() + timeout
        while not listening(node):
            assert time.monotonic() < deadline, node.log.read_text()[-3000:]
            time.sleep(0.05)


def nowhere(nodes: list[Node], address: str) -> bool:
    """No kernel of ``nodes`` holds a ban of ``address``."""
    return not any(address in node.banned() for node in nodes)
