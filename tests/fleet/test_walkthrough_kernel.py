"""docs/fleet.md's walk-through, run for real: three PBXs, two sites, one PostgreSQL with TLS.

The commands are read from the page itself, so the page cannot drift from
what works: every ```console block whose first line is ``# on HOST``, in
the page's order, the SQL block of step 1 and the ``fleet.env`` block of
step 2. The database server is tests/fleet/tlsserver.py (TCP on 127.0.0.1,
TLS with a certificate for ``localhost`` signed by a CA made for the test,
``hostssl … scram-sha-256`` only); each PBX is a network namespace, and its
agent runs in a mount namespace of its own whose /var/log is the node's own
folder (each PBX has its own logs; the host's are never read).

What the test changes, and only that: in ``PBXFW_DB``,
``db.example.net:5432`` becomes ``localhost:PORT`` and
``/etc/pbxfw/db-ca.pem`` the test CA's file; ``PBXFW_STATE_DIR`` is the
node's folder; ``pbxfw apply`` gets ``--netns`` (the PBX's kernel is its
namespace); ``systemctl enable --now pbxfw-agent`` starts what the unit
runs (step 4's ``ExecStart``, with ``fleet.env``, plus ``--netns``),
``systemctl restart pbxfw-agent`` starts it again with step 6's
``agent.env`` (each PBX's own role), and
``systemctl daemon-reload`` is nothing to do; the database server's
commands run as ``postgres`` on its unix socket.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import pytest

from tests.agent.test_agent_kernel import wait_until
from tests.fleet.nodes import PBXFW, Node
from tests.fleet.tlsserver import TlsPgServer
from tests.kernel.lab import Lab, require_kernel
from tests.pgserver import pg_unavailable

pytestmark = pytest.mark.kernel

FLEET_MD = Path(__file__).resolve().parents[2] / "docs" / "fleet.md"
DB_HOST = "the database server, as postgres"
NODES = {"pbx-hq-1": "hq", "pbx-hq-2": "hq", "pbx-br": "branch"}


# -- reading the page -------------------------------------------------------------------


def section(title: str) -> str:
    """The text of the section ``## title`` (up to the next ``## ``)."""
    text = FLEET_MD.read_text()
    start = text.index(f"\n## {title}\n")
    end = text.find("\n## ", start + 1)
    return text[start : end if end >= 0 else len(text)]


def steps(text: str) -> list[tuple[str, str]]:
    """``(host, command)`` of every ``$`` line of the console blocks naming a host."""
    found: list[tuple[str, str]] = []
    for block in re.findall(r"```console\n(.*?)```", text, re.S):
        lines = block.splitlines()
        if not lines or not lines[0].startswith("# on "):
            continue
        host = ""
        for line in lines:
            if line.startswith("# on "):
                host = line.removeprefix("# on ").strip()
            elif line.startswith("$ "):
                found.append((host, line[2:]))
    return found


def fenced(text: str, first_line: str) -> list[str]:
    """The lines of the fenced block whose first line is ``first_line``."""
    for block in re.findall(r"```[a-z]*\n(.*?)```", text, re.S):
        lines: list[str] = block.splitlines()
        if lines and lines[0] == first_line:
            return lines[1:]
    raise AssertionError(f"docs/fleet.md has no block starting {first_line!r}")


def fleet_env(text: str) -> dict[str, str]:
    """Step 2's /etc/pbxfw/fleet.env, as systemd and ``. FILE`` read it."""
    values: dict[str, str] = {}
    for line in fenced(text, "# /etc/pbxfw/fleet.env"):
        key, _, value = line.partition("=")
        [values[key]] = shlex.split(value)
    return values


def agent_env(text: str) -> dict[str, str]:
    """Step 6's /etc/pbxfw/agent.env of pbx-hq-1 (the node's own role)."""
    values: dict[str, str] = {}
    for line in fenced(text, "# /etc/pbxfw/agent.env on pbx-hq-1 (chmod 600)"):
        key, _, value = line.partition("=")
        [values[key]] = shlex.split(value)
    assert "pbxfw_node_pbx-hq-1:secret-of-pbx-hq-1@" in values["PBXFW_DB"]
    return values


def exec_start(text: str) -> dict[str, list[str]]:
    """Step 4's ``ExecStart=`` of each PBX: pbx-hq-1's drop-in, and the others'
    as the sentence after it says."""
    lines = fenced(text, "# /etc/systemd/system/pbxfw-agent.service.d/fleet.conf on pbx-hq-1")
    assert "EnvironmentFile=/etc/pbxfw/fleet.env" in lines and "ExecStartPre=" in lines
    [command] = [
        line.removeprefix("ExecStart=") for line in lines if line.startswith("ExecStart=/")
    ]
    argv = shlex.split(command)
    assert argv[1:] == ["agent", "--site", "hq", "--node", "pbx-hq-1"], argv
    said = "On `pbx-hq-2` the last line ends `--site hq --node pbx-hq-2`, on `pbx-br`\n`--site branch --node pbx-br`"
    assert said in text
    return {name: ["agent", "--site", site, "--node", name] for name, site in NODES.items()}


# -- the fleet --------------------------------------------------------------------------


@dataclass
class Pbx:
    node: Node
    env: dict[str, str]
    unit: list[str]
    #: the agent's environment once it has its own role (step 6)
    role_env: dict[str, str]
    agent: subprocess.Popen[bytes] | None = None
    own_role: bool = False


class Walk:
    """The database server, the three PBXs, and how each runs a line of the page."""

    def __init__(self, server: TlsPgServer, lab: Lab, folder: Path, text: str) -> None:
        env = fleet_env(text)
        units = exec_start(text)
        own = agent_env(text)
        assert "On `pbx-hq-2` and `pbx-br` the same with their own role and password." in text
        self.server = server
        self.folder = folder
        # The database server's working folder (pg_dump's file): its user writes there.
        self.dumps = server.folder / "dumps"
        self.dumps.mkdir()
        if os.geteuid() == 0:
            shutil.chown(self.dumps, "postgres", "postgres")
        self.url = self.here(env["PBXFW_DB"])
        self.pbxs: dict[str, Pbx] = {}
        for name in NODES:
            node = Node(name, lab.namespace(name.removeprefix("pbx-")), folder / name)
            (node.folder / "log" / "asterisk").mkdir(parents=True)
            state = {"PBXFW_STATE_DIR": str(node.folder / "state")}
            values = env | {"PBXFW_DB": self.url} | state
            role = own | {"PBXFW_DB": self.here(own["PBXFW_DB"].replace("pbx-hq-1", name))} | state
            self.pbxs[name] = Pbx(node, values, units[name], role)

    def here(self, url: str) -> str:
        """``url`` of the page, at the test's server and with its CA."""
        assert "db.example.net:5432" in url and "/etc/pbxfw/db-ca.pem" in url
        url = url.replace("db.example.net:5432", f"localhost:{self.server.port}")
        return url.replace("/etc/pbxfw/db-ca.pem", str(self.server.ca))

    def environ(self, pbx: Pbx, agent: bool = False) -> dict[str, str]:
        keep = {k: v for k, v in os.environ.items() if not k.startswith("PBXFW_")}
        path = f"{Path(PBXFW).parent}{os.pathsep}{keep.get('PATH', '')}"
        return keep | (pbx.role_env if agent and pbx.own_role else pbx.env) | {"PATH": path}

    def run(self, host: str, command: str) -> str:
        """One line of the page on ``host``; its output. A failure fails the test."""
        if host == DB_HOST:
            done = self.server.shell(command, self.dumps)
        elif host == "every PBX":
            if command == "systemctl enable --now pbxfw-agent":
                for pbx in self.pbxs.values():
                    self.start(pbx)
                return ""
            if command == "systemctl restart pbxfw-agent":
                # Step 6: the drop-in now names agent.env, the node's own role.
                for pbx in self.pbxs.values():
                    self.stop(pbx)
                    pbx.own_role = True
                    self.start(pbx)
                return ""
            assert command == "systemctl daemon-reload", command
            return ""
        else:
            pbx = self.pbxs[host]
            if command.startswith(("pbxfw apply", "pbxfw confirm", "pbxfw rollback")):
                command += f" --netns {pbx.node.ns}"
            done = subprocess.run(
                command,
                shell=True,
                cwd=self.folder,
                env=self.environ(pbx),
                capture_output=True,
                text=True,
                timeout=60,
            )
        assert done.returncode == 0, f"on {host}: {command}\n{done.stdout}\n{done.stderr}"
        return done.stdout

    def pbxfw(self, host: str, *args: str) -> str:
        return self.run(host, shlex.join(["pbxfw", *args]))

    def start(self, pbx: Pbx) -> None:
        """What the unit runs (its ``ExecStart``, with fleet.env), in the PBX's
        namespace, with the PBX's own /var/log."""
        bind = 'mount --bind "$1" /var/log && shift && exec "$@"'
        argv = [
            *("unshare", "--mount", "--propagation", "private", "sh", "-c", bind, "sh"),
            *(str(pbx.node.folder / "log"), PBXFW, *pbx.unit, "--netns", pbx.node.ns),
        ]
        with open(pbx.node.log, "ab") as log:
            pbx.agent = subprocess.Popen(
                argv, stdout=log, stderr=subprocess.STDOUT, env=self.environ(pbx, agent=True)
            )

    def nodes(self) -> dict[str, dict[str, object]]:
        listing = json.loads(self.pbxfw("pbx-hq-1", "node", "list", "--json"))
        return {str(n["name"]): n for n in listing}

    def stop(self, pbx: Pbx) -> None:
        if pbx.agent is not None:
            pbx.agent.terminate()
            try:
                pbx.agent.wait(10)
            except subprocess.TimeoutExpired:
                pbx.agent.kill()
                pbx.agent.wait(5)
            pbx.agent = None

    def close(self) -> None:
        for pbx in self.pbxs.values():
            self.stop(pbx)

    def agents_roles(self) -> set[str]:
        """The roles the agents' listening connections log in as."""
        sql = (
            "SELECT DISTINCT usename FROM pg_stat_activity"
            " WHERE datname = 'pbxfw' AND application_name = 'pbxfw-listen'"
        )
        out = self.server.run("psql", "-d", "postgres", "-At", "-c", sql).stdout
        return set(out.split())


@pytest.fixture
def walk(tmp_path: Path) -> Iterator[Walk]:
    require_kernel()
    reason = pg_unavailable()
    if reason is not None:
        pytest.skip(reason)  # a failure under CI=true (tests/conftest.py)
    server = TlsPgServer()
    try:
        with Lab(f"wk{os.getpid() % 10000}") as lab:
            walk = Walk(server, lab, tmp_path, section("Setting up three PBXs and one PostgreSQL"))
            try:
                yield walk
            finally:
                walk.close()
    finally:
        server.stop()


def everything_up(walk: Walk) -> bool:
    nodes = walk.nodes()
    return set(nodes) == set(NODES) and all(n["state"] == "up" for n in nodes.values())


def holds(node: Node, address: str) -> bool:
    return address in node.banned()


def lacks(node: Node, subnet: str) -> bool:
    return subnet not in node.ruleset()


def the_sites_rules(walk: Walk) -> None:
    """hq's kernels hold hq's office and not branch's, and branch's the other way round."""
    for name, pbx in walk.pbxs.items():
        ruleset = pbx.node.ruleset()
        own, other = ("10.1.0.0/16", "10.2.0.0/24")[:: 1 if NODES[name] == "hq" else -1]
        assert own in ruleset and other not in ruleset, f"{name}:\n{ruleset}"
        assert "198.51.100.10" in ruleset


# -- the test ---------------------------------------------------------------------------


def test_the_walkthrough_sets_up_two_sites_and_three_pbxs(walk: Walk) -> None:
    setup = section("Setting up three PBXs and one PostgreSQL")
    # Step 1: the role and the database, as the page writes them.
    sql = "\n".join(fenced(setup, "-- on the database server, as postgres"))
    walk.server.run("psql", "-d", "postgres", "-v", "ON_ERROR_STOP=1", input=sql)
    # A connection without TLS is refused by the server; verify-full is what the PBXs use.
    plain = walk.url.split("?")[0].replace("postgresql+psycopg", "postgresql") + "?sslmode=disable"
    refused = subprocess.run(
        [str(walk.server.bin / "psql"), plain, "-c", "SELECT 1"], capture_output=True, text=True
    )
    assert refused.returncode != 0 and "no pg_hba.conf entry" in refused.stderr
    assert "sslmode=verify-full" in walk.url

    lines = steps(setup)
    assert [host for host, _ in lines][:1] == ["pbx-hq-1"] and len(lines) >= 15
    output: dict[str, str] = {}
    for host, command in lines:
        output[command] = walk.run(host, command)
        if command == "systemctl enable --now pbxfw-agent":
            # Step 4: registered at once, and waiting for their site's first apply.
            assert wait_until(lambda: set(walk.nodes()) == set(NODES), 20, 0.25) is not None
            for name, node in walk.nodes().items():
                assert node["site"] == NODES[name]
                assert (node["state"], node["applied_revision"]) == ("drifted", None), node

    sites = output["pbxfw site list"]
    assert all(name in sites for name in ("default", "hq", "branch")), sites
    assert "Branch office" in output["pbxfw network list --site branch"]
    assert "HQ office" not in output["pbxfw network list --site branch"]
    # Three nodes up, each in its site, each kernel with its own site's rules.
    took = wait_until(partial(everything_up, walk), 20, 0.25)
    assert took is not None, walk.nodes()
    nodes = walk.nodes()
    assert {name: n["site"] for name, n in nodes.items()} == NODES
    the_sites_rules(walk)
    listing = output["pbxfw node list"]
    assert all(name in listing for name in NODES), listing
    # Step 6: each agent connects as its own role, which PostgreSQL holds to its rights.
    roles = {f"pbxfw_node_{name}" for name in NODES}
    assert wait_until(lambda: walk.agents_roles() == roles, 20, 0.25) is not None
    node_url = walk.pbxs["pbx-br"].role_env["PBXFW_DB"].replace("postgresql+psycopg", "postgresql")
    change = "UPDATE networks SET description = 'x'"
    refused = subprocess.run(
        [str(walk.server.bin / "psql"), node_url, "-c", change], capture_output=True, text=True
    )
    assert refused.returncode != 0 and "permission denied for table networks" in refused.stderr

    # Backing up and restoring, as the page says; a ban recorded after the dump is lost.
    backup = section("Backing up and restoring")
    [dump, *restore] = steps(backup)
    assert dump[0] == DB_HOST and [host for host, _ in restore] == [DB_HOST] * 3
    walk.run(*dump)
    walk.pbxfw("pbx-hq-1", "bans", "add", "203.0.113.9", "--jail", "asterisk", "--seconds", "3600")
    hq2 = walk.pbxs["pbx-hq-2"].node
    assert wait_until(lambda: "203.0.113.9" in hq2.banned(), 10, 0.1) is not None
    # A configuration applied after the dump: in hq's kernels until the restore.
    walk.pbxfw(
        "pbx-hq-1", "network", "add", "Later", "10.3.0.0/24", "--allow", "sip", "--site", "hq"
    )
    walk.run("pbx-hq-1", "pbxfw apply --site hq")
    assert wait_until(lambda: "10.3.0.0/24" in hq2.ruleset(), 10, 0.1) is not None
    for host, command in restore:
        walk.run(host, command)
    # The nodes reconnect, report again and hold their sites' rules as restored
    # (the later network is gone from every kernel); the later ban is gone.
    took = wait_until(partial(everything_up, walk), 60, 0.5)
    assert took is not None, walk.nodes()
    for name in ("pbx-hq-1", "pbx-hq-2"):
        gone = wait_until(partial(lacks, walk.pbxs[name].node, "10.3.0.0/24"), 30, 0.25)
        assert gone is not None, name
    the_sites_rules(walk)
    assert "203.0.113.9" not in walk.pbxfw("pbx-hq-1", "bans", "list")
    assert wait_until(lambda: "203.0.113.9" not in hq2.banned(), 70, 0.5) is not None
    # And the fleet works as before: a ban made now reaches the other nodes.
    walk.pbxfw("pbx-hq-1", "bans", "add", "203.0.113.77", "--jail", "asterisk")
    for name in ("pbx-hq-2", "pbx-br"):
        arrived = wait_until(partial(holds, walk.pbxs[name].node, "203.0.113.77"), 10, 0.1)
        assert arrived is not None, name
