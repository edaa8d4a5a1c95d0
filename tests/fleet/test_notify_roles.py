"""Stale nodes and the daily digest under the nodes' own roles (issue 19) on a
real PostgreSQL.

Three agents of the site ``default`` (nodes a, b, c), each connected as its
node's login role (``pbxfw fleet roles --node N``), in-process with a
dry-run kernel and one injected clock (so that "stale" and "a day" take
seconds), tell a real HTTP receiver and a real SMTP server (STARTTLS,
aiosmtpd). A node of another site, stale, and its failing source stay out
of every message. c stops reporting: exactly one stale-node message, from
the teller a; exactly one digest per period, from a, with what fails on a
and b; then a stops: b takes over, tells a's silence (not c's again), sends
at most one extra digest, then one per period.

And the same with real ``pbxfw agent`` processes in network namespaces, each
under its role, on the real clock: c stopped, exactly one stale-node message.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterator
from email.message import Message as MailMessage
from pathlib import Path
from typing import Any

import pytest

from pbxfw.agent.daemon import Agent, AgentOptions
from pbxfw.agent.health import Backoff
from pbxfw.agent.notifier import NotifyOptions
from pbxfw.kernel.dryrun import DryRunBackend
from pbxfw.storage.repository import Store
from pbxfw.usecases import ConfigService
from tests.agent.test_agent_kernel import wait_until
from tests.agent.test_agent_unit import setup
from tests.fleet.nodes import Fleet
from tests.fleet.test_roles import Roles, _admin, roles
from tests.kernel.lab import Lab, require_kernel
from tests.notify_servers import Certs, Mailbox, Receiver, certs, receiver, smtp_starttls

__all__ = ["certs", "receiver", "roles", "smtp_starttls"]  # the fixtures, used by name

#: A "day" of 100 s; every trigger checked at each tick.
OPTIONS = NotifyOptions(
    reload_seconds=0.0,
    nodes_seconds=0.0,
    rollback_seconds=0.0,
    digest_seconds=100.0,
    timeout=2.0,
    attempts=2,
    backoff=Backoff(first=0.05, longest=0.05),
)
#: Seconds the clock moves between two rounds of ticks (a report is due every 5 s).
STEP = 5.0


class Clock:
    def __init__(self) -> None:
        self.now = time.time()

    def __call__(self) -> float:
        return self.now


class Site:
    """The site's agents, each under its node's login role, on one clock."""

    def __init__(self, roles: Roles, tmp_path: Path) -> None:
        self.roles = roles
        self.tmp_path = tmp_path
        self.clock = Clock()
        self.agents: dict[str, Agent] = {}
        self.stores: list[Store] = []

    def start(self, node: str, login: str) -> None:
        store = Store.open(self.roles.url_as(login))
        self.stores.append(store)
        options = AgentOptions(
            state_dir=str(self.tmp_path / f"state-{node}"),
            node=node,
            discover_asterisk=False,
            notify=OPTIONS,
        )
        agent = Agent(store, options, backend=DryRunBackend(), clock=self.clock)
        self.agents[node] = agent
        agent.start()

    def run(self, seconds: float, *nodes: str) -> None:
        """Move the clock ``seconds`` on, ticking ``nodes`` every STEP."""
        end = self.clock.now + seconds
        while self.clock.now < end:
            self.clock.now = min(end, self.clock.now + STEP)
            for node in nodes:
                self.agents[node].tick()

    def failing_parts(self) -> dict[str, dict[str, str]]:
        """Each agent's failing parts but the log sources (expected to fail here)."""
        return {
            node: {s.source: s.error for s in agent.health.failing() if not s.is_log}
            for node, agent in self.agents.items()
        }

    def close(self) -> None:
        for agent in self.agents.values():
            agent.notifier.close()
            agent.ips.close()
            agent.wake.close()
        for store in self.stores:
            store.close()


@pytest.fixture
def site(roles: Roles, tmp_path: Path, cli: Any) -> Iterator[Site]:
    made = Site(roles, tmp_path)
    try:
        yield made
    finally:
        made.close()


def bind(roles: Roles, cli: Any, node: str, site: str = "default") -> str:
    login = f"{roles.group}_{node}"
    if login != roles.login:
        roles.extra.append(login)
    result = cli(
        "fleet", "roles", "--apply", "--role", roles.group, "--node", node, "--site", site,
        "--login", login,
    )  # fmt: skip
    assert result.exit_code == 0, result.stderr
    return login


def stale_told(receiver: Receiver) -> list[tuple[str, str]]:
    """(teller, stale node) of each stale-node message received."""
    return [
        (b["node"], b["details"]["stale_node"])
        for b in receiver.received()
        if b["event"] == "node_stale"
    ]


def digests(mailbox: Mailbox) -> list[MailMessage]:
    return [m for m in list(mailbox.messages) if m["X-Pbxfw-Event"] == "digest"]


def body(mail: MailMessage) -> str:
    payload = mail.get_payload(decode=True)
    assert isinstance(payload, bytes)
    return payload.decode()


def settle(count: int, seen: Any, timeout: float = 10.0) -> list[Any]:
    """``seen()`` once it holds ``count`` items (bounded), and then still
    after the senders had a moment more (nothing more arrives)."""
    end = time.monotonic() + timeout
    while time.monotonic() < end and len(seen()) < count:
        time.sleep(0.02)
    time.sleep(0.5)
    found: list[Any] = seen()
    return found


def test_one_teller_per_site_under_the_nodes_roles(
    site: Site,
    roles: Roles,
    cli: Any,
    db_url: str,
    receiver: Receiver,
    smtp_starttls: Mailbox,
    certs: Certs,
) -> None:
    svc = ConfigService(Store.open(db_url))
    try:
        setup(svc, site.tmp_path)
        # A log source that cannot be read (a folder): failing on every node.
        svc.update_settings({"log_ssh": str(site.tmp_path)})
    finally:
        svc.store.close()
    assert cli("notify", "add", "hook", receiver.url + "/hook").exit_code == 0
    mail = (
        f"smtp://pbx:s3cret%3Apass%2Fword@127.0.0.1:{smtp_starttls.port}"
        f"?to=admin@example.com&cafile={certs.ca}"
    )
    assert cli("notify", "add", "mail", mail).exit_code == 0
    # Another site's node, stale since a minute and failing: none of this site's business.
    assert cli("site", "add", "other").exit_code == 0
    with _admin(roles.owner_url) as admin:
        seen = site.clock.now - 60
        admin.execute(
            "INSERT INTO nodes (name, site, registered_at, started_at, last_seen) "
            "VALUES ('y', 'other', %s, %s, %s)",
            (seen, seen, seen),
        )
        admin.execute(
            "INSERT INTO source_status (node, source, jail, error, since, failures, "
            "updated_at) VALUES ('y', '/var/log/other.log', 'ssh', 'not ours', 1, 1, 1)"
        )
    for node in ("a", "b", "c"):
        site.start(node, bind(roles, cli, node))
    began = site.clock.now

    site.run(10, "a", "b", "c")
    site.run(35, "a", "b")  # c stops reporting
    assert settle(1, lambda: stale_told(receiver)) == [("a", "c")], receiver.received()
    site.run(20, "a", "b")
    assert stale_told(receiver) == [("a", "c")]

    assert cli("bans", "add", "203.0.113.90").exit_code == 0  # the fleet's bans: readable
    # The digest of the site: a day (100 s) after the channel was first seen, from a only.
    site.run(began + 105 - site.clock.now, "a", "b")
    [digest] = settle(1, lambda: digests(smtp_starttls))
    assert str(digest["Subject"]) == "[pbxfw default/a] Daily digest of default"
    text = body(digest)
    assert "Bans active now: 1." in text.splitlines(), text
    # What fails on a and on b (read under a's role), not on c (stale) nor y (another site).
    assert " on a: " in text and " on b: " in text, text
    assert " on c: " not in text and "not ours" not in text, text
    assert "Nodes not reporting: c" in text.splitlines(), text
    # Each node stored its own digest time under its role: a's is its digest's
    # (at the first tick a day on), b's and c's when they first saw the channel.
    with _admin(roles.owner_url) as admin:
        stored = admin.execute(
            "SELECT node, digest_at FROM notify_status WHERE channel = 'mail' ORDER BY node"
        ).fetchall()
    day = OPTIONS.digest_seconds
    assert stored == [("a", pytest.approx(began + day)), ("b", began), ("c", began)], began

    # a stops: b takes over, tells a's silence only, and sends at most one extra digest.
    site.run(40, "b")
    assert settle(2, lambda: stale_told(receiver)) == [("a", "c"), ("b", "a")]
    taken_over = settle(2, lambda: digests(smtp_starttls))
    assert [m["X-Pbxfw-Event"] for m in taken_over] == ["digest"] * len(taken_over)
    assert len(taken_over) <= 2, [str(m["Subject"]) for m in taken_over]
    # Then one digest per period from b: exactly one in the next 100 s.
    before = len(taken_over)
    site.run(100, "b")
    after = settle(before + 1, lambda: digests(smtp_starttls))
    assert len(after) == before + 1, [str(m["Subject"]) for m in after]
    assert str(after[-1]["Subject"]) == "[pbxfw default/b] Daily digest of default"
    text = body(after[-1])
    assert "Nodes not reporting: a, c" in text.splitlines(), text
    assert " on b: " in text and " on a: " not in text, text
    assert stale_told(receiver) == [("a", "c"), ("b", "a")]
    # Nothing of it was refused by PostgreSQL.
    assert site.failing_parts() == {"a": {}, "b": {}, "c": {}}, site.failing_parts()


def test_real_agents_under_their_roles_tell_one_stale_node(
    roles: Roles, cli: Any, tmp_path: Path, db_url: str, receiver: Receiver
) -> None:
    """Three real ``pbxfw agent`` processes of one site in network
    namespaces, each under its node's login role, and a real HTTP receiver:
    c is stopped; once it is stale (30 s) exactly one message tells it, from a."""
    require_kernel()
    assert cli("notify", "add", "hook", receiver.url + "/hook").exit_code == 0
    with Lab(f"nr{os.getpid() % 10000}") as lab:
        fleet = Fleet(lab, db_url, tmp_path)
        try:
            fleet.configure(maxretry=3)
            nodes = {name: fleet.add(name) for name in ("a", "b", "c")}
            for name, node in nodes.items():
                fleet.db = roles.url_as(bind(roles, cli, name))  # each under its own role
                fleet.start(node)
            fleet.db = db_url
            up = wait_until(lambda: reporting(fleet) == {"a", "b", "c"}, 30, 0.2)
            assert up is not None, nodes["a"].log.read_text()[-3000:]
            fleet.stop(nodes["c"])
            # Stale after 30 s; the teller looks at the nodes every 15 s.
            told = wait_until(lambda: bool(stale_told(receiver)), 30 + 15 + 15, 0.2)
            assert told is not None, receiver.received()
            assert stale_told(receiver) == [("a", "c")], receiver.received()
            # One more look of every node at the nodes: nothing more is told.
            time.sleep(16)
            assert stale_told(receiver) == [("a", "c")], receiver.received()
            for name in ("a", "b"):
                text = nodes[name].log.read_text()
                assert "permission denied" not in text and "row-level security" not in text, text
        finally:
            fleet.close()


def reporting(fleet: Fleet) -> set[str]:
    """The nodes ``node list`` shows up (not stale)."""
    listing = fleet.pbxfw("node", "list", "--json")
    if listing.returncode != 0:
        return set()
    return {n["name"] for n in json.loads(listing.stdout) if n["state"] != "stale"}
