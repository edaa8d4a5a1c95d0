"""Shared bans at the receiving agent (agent.bansync, agent.receive): in-process
agents with the dry-run backend on one store (both engines).

A ban another node recorded reaches this node's sets through an incremental
read (only the bans written since its revision); ``ips_share`` = ``off``
keeps it at the detecting node; a ban the receiving node's whitelist covers
is not enforced there and stays stored; ``bans rm`` takes it out everywhere
(a full read). The same with real agents and kernels: tests/fleet.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from pbxfw.agent.daemon import Agent, AgentOptions
from pbxfw.domain.bans import Ban
from pbxfw.ips.events import BanDecision
from pbxfw.kernel.dryrun import DryRunBackend
from pbxfw.usecases import ConfigService
from pbxfw.usecases.bans import BanDelta, BanService
from tests.agent.test_agent_unit import setup


def detected(address: str, node: str, seconds: int = 600) -> Ban:
    now = datetime.now(UTC)
    decision = BanDecision(
        host=ipaddress.ip_address(address),
        jail="asterisk",
        scope=frozenset({"sip", "iax", "ajam"}),
        time=now,
        seconds=seconds,
        failures=5,
        first_failure=now,
        reason="5 failed registrations",
        offence=1,
    )
    return Ban.from_decision(decision, now.timestamp(), node, "default")


@pytest.fixture
def agents(svc: ConfigService, tmp_path: Path) -> Iterator[dict[str, Agent]]:
    """Two started agents, nodes ``a`` and ``b``, polling (no listening connection)."""
    setup(svc, tmp_path)
    made: dict[str, Agent] = {}
    try:
        for name in ("a", "b"):
            options = AgentOptions(state_dir=str(tmp_path / name), node=name, listen=False)
            made[name] = Agent(svc.store, options, backend=DryRunBackend())
            made[name].start()
        yield made
    finally:
        for agent in made.values():
            agent.ips.close()
            agent.wake.close()


def kernel(agent: Agent) -> set[str]:
    backend = agent.backend
    assert isinstance(backend, DryRunBackend)
    return {subnet for subnet, _jail in backend.bans}


def reads(agent: Agent) -> list[int | None]:
    """Record the revisions ``agent`` reads the bans since (None: a full read)."""
    seen: list[int | None] = []
    original = agent.rules.bans.changed_since

    def counted(revision: int | None) -> BanDelta:
        seen.append(revision)
        return original(revision)

    agent.rules.bans.changed_since = counted  # type: ignore[method-assign]
    return seen


def test_a_ban_of_another_node_arrives_by_an_incremental_read(
    svc: ConfigService, agents: dict[str, Agent]
) -> None:
    a, b = agents["a"], agents["b"]
    seen = reads(b)
    revision = BanService(svc.store).record([detected("198.51.100.1", "a")])
    b.tick()
    assert "198.51.100.1/32" in kernel(b)
    assert seen and seen[-1] is not None and seen[-1] < revision  # since its revision
    assert b.rules.bans_revision == revision
    # The detecting node's own sync takes it too (it is its own ban).
    a.tick()
    assert "198.51.100.1/32" in kernel(a)


def test_bans_rm_lifts_the_ban_at_every_node(svc: ConfigService, agents: dict[str, Agent]) -> None:
    bans = BanService(svc.store)
    bans.record([detected("198.51.100.2", "a")])
    bans.add("203.0.113.9", seconds=600)  # an administrator's: every node
    for agent in agents.values():
        agent.tick()
        assert {"198.51.100.2/32", "203.0.113.9/32"} <= kernel(agent)
    seen = reads(agents["b"])
    bans.remove("198.51.100.2")
    for agent in agents.values():
        agent.tick()
        assert "198.51.100.2/32" not in kernel(agent)
        assert "203.0.113.9/32" in kernel(agent)
    # b read since its revision, and was answered with every ban (a removal).
    assert seen and seen[-1] is not None


def test_ips_share_off_keeps_a_ban_at_the_detecting_node(
    svc: ConfigService, agents: dict[str, Agent]
) -> None:
    svc.update_settings({"ips_share": "off"})
    bans = BanService(svc.store)
    bans.record([detected("198.51.100.3", "a")])
    bans.add("203.0.113.10", seconds=600)
    for agent in agents.values():
        agent.tick()
    assert "198.51.100.3/32" in kernel(agents["a"])
    assert "198.51.100.3/32" not in kernel(agents["b"])
    # An administrator's ban is enforced at every node, whatever the share.
    assert "203.0.113.10/32" in kernel(agents["b"])

    # Sharing again: b takes the ban at once (the change makes every agent read all).
    svc.update_settings({"ips_share": "site"})
    agents["b"].tick()
    assert "198.51.100.3/32" in kernel(agents["b"])


def test_a_ban_the_receiving_node_whitelists_is_not_enforced_there_and_stays_stored(
    svc: ConfigService, agents: dict[str, Agent]
) -> None:
    b = agents["b"]
    b._own = [ipaddress.ip_address("198.51.100.4")]  # b's own address: never banned at b
    b.rules.refresh_whitelist()
    bans = BanService(svc.store)
    bans.record([detected("198.51.100.4", "a"), detected("198.51.100.5", "a")])
    for agent in agents.values():
        agent.tick()
    assert "198.51.100.4/32" in kernel(agents["a"])
    assert "198.51.100.4/32" not in kernel(b)
    assert "198.51.100.5/32" in kernel(b)
    # A whole-table load at b leaves it out too, and does not lift it from the store.
    b.rules.stale = True
    b.tick()
    assert "198.51.100.4" in {b_.address_text() for b_ in bans.active()}
