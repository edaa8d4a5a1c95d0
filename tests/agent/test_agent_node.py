"""The agent's node part in-process (dry-run kernel, injected clock): it registers
at start, reports every 5 s what its kernel holds, and a failing report never
stops it."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from pbxfw.agent.daemon import Agent, AgentOptions
from pbxfw.domain.nodes import REPORT_SECONDS, Node
from pbxfw.kernel.dryrun import DryRunBackend
from pbxfw.usecases import ConfigService, NetworkChange
from pbxfw.usecases.bans import BanService
from pbxfw.usecases.firewall import FirewallService
from pbxfw.usecases.nodes import NodeService
from tests.agent.test_agent_unit import failure, setup


class Clock:
    def __init__(self) -> None:
        self.now = time.time()

    def __call__(self) -> float:
        return self.now


def start(svc: ConfigService, tmp_path: Path, backend: DryRunBackend, clock: Clock) -> Agent:
    options = AgentOptions(state_dir=str(tmp_path / "state"), node="pbx-a")
    agent = Agent(svc.store, options, backend=backend, clock=clock)
    agent.start()
    return agent


def the_node(svc: ConfigService, clock: Clock) -> tuple[Node, str]:
    listing = NodeService(svc.store).listing(now=clock.now)
    [node] = listing.nodes
    return node, str(listing.state(node))


def test_registers_at_start_and_reports_what_its_kernel_holds(
    svc: ConfigService, tmp_path: Path
) -> None:
    setup(svc, tmp_path)
    backend, clock = DryRunBackend(), Clock()
    started = clock.now
    agent = start(svc, tmp_path, backend, clock)
    node, state = the_node(svc, clock)
    assert (node.name, node.site, node.last_seen, node.started_at) == (
        "pbx-a",
        "default",
        started,
        started,
    )
    # Never applied: the kernel holds the stored configuration of no revision.
    assert node.applied_revision is None and state == "drifted"
    assert node.version == "0.1.0" and node.kernel_bans == 0 and node.last_error == ""

    FirewallService(svc.store, tmp_path / "state", backend=lambda _ns: backend).apply()  # type: ignore[arg-type,return-value]
    clock.now += 0.2  # the next tick: the new revision is reported at once, not in 5 s
    agent.tick()
    node, state = the_node(svc, clock)
    assert node.applied_revision == svc.revision() and state == "up"
    assert node.last_seen == clock.now

    bans = BanService(svc.store, clock=clock)
    bans.add("203.0.113.7", jail="ssh", seconds=600)
    bans.add("203.0.113.8", jail="manual", seconds=600)
    clock.now += 1
    agent.tick()
    assert the_node(svc, clock)[0].kernel_bans == 0  # not yet due: at most one report per 5 s
    clock.now += REPORT_SECONDS
    agent.tick()
    assert the_node(svc, clock)[0].kernel_bans == len(backend.bans) == 2
    registered = the_node(svc, clock)[0].registered_at

    # A stored change not applied: drifted; stopped reporting: stale.
    svc.add_network(NetworkChange(name="Office", subnet="10.1.0.0/16"))
    node, state = the_node(svc, clock)
    assert state == "drifted" and node.applied_revision == svc.revision() - 1
    clock.now += 31
    assert the_node(svc, clock)[1] == "stale"
    agent.tick()  # reporting again: drifted, registered_at kept
    node, state = the_node(svc, clock)
    assert state == "drifted" and node.registered_at == registered


def test_the_log_lag_is_the_bytes_not_read_yet(svc: ConfigService, tmp_path: Path) -> None:
    log = setup(svc, tmp_path)
    backend, clock = DryRunBackend(), Clock()
    agent = start(svc, tmp_path, backend, clock)
    written = failure("198.51.100.1") * 2
    with log.open("a") as f:
        f.write(written)
    assert agent.ips.unread_bytes() == len(written.encode())
    agent.node.report()  # between two reads
    assert the_node(svc, clock)[0].log_lag_bytes == len(written.encode())
    agent.tick()  # read
    assert agent.ips.unread_bytes() == 0
    clock.now += REPORT_SECONDS
    agent.tick()
    assert the_node(svc, clock)[0].log_lag_bytes == 0


def test_a_failing_report_never_stops_the_agent(
    svc: ConfigService, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    log = setup(svc, tmp_path)
    backend, clock = DryRunBackend(), Clock()
    agent = start(svc, tmp_path, backend, clock)

    def broken(_node: Node) -> bool:
        raise RuntimeError("the nodes table is gone")

    monkeypatch.setattr(agent.node.nodes, "report", broken)
    clock.now += REPORT_SECONDS
    with log.open("a") as f:
        f.write(failure("198.51.100.9") * 3)
    agent.tick()
    # The other parts went on: the attacker is banned in the kernel.
    assert ("198.51.100.9/32", "asterisk") in backend.bans
    assert [s.source for s in agent.health.failing()] == ["agent:node"]
    monkeypatch.undo()
    clock.now += 2  # after the first backoff (1 s)
    agent.tick()
    assert agent.health.failing() == []
    node, _state = the_node(svc, clock)
    assert node.kernel_bans == 1 and node.last_seen == clock.now
    assert node.last_error == ""  # its own failure is over once it reports


def test_the_last_error_is_the_newest_failure_on_one_line(
    svc: ConfigService, tmp_path: Path
) -> None:
    setup(svc, tmp_path)
    folder = tmp_path / "ssh-logs"
    folder.mkdir()
    svc.update_settings({"log_ssh": str(folder)})
    backend, clock = DryRunBackend(), Clock()
    start(svc, tmp_path, backend, clock)
    error = the_node(svc, clock)[0].last_error
    assert (
        error == f"log source {str(folder)!r} (jail ssh): is a folder, not a file (setting log_ssh)"
    )


def test_removed_while_running_it_registers_again(svc: ConfigService, tmp_path: Path) -> None:
    setup(svc, tmp_path)
    backend, clock = DryRunBackend(), Clock()
    agent = start(svc, tmp_path, backend, clock)
    nodes = NodeService(svc.store)
    nodes.remove("pbx-a")
    assert nodes.listing().nodes == []
    clock.now += REPORT_SECONDS
    agent.tick()
    node, _state = the_node(svc, clock)
    assert node.registered_at == clock.now
