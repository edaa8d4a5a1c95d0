"""Each agent keeps its own log positions, counters and source health (migration 0009).

Two agents (nodes a and b) on one database read a log at the same path, as
two PBXs each read their own /var/log/asterisk/messages: each stores its own
position and counters, a restarted agent continues at its own position, and
``ips status`` shows the counters summed or one node's, and ``node rm``
takes a node's source health with it (docs/decisions.md, "Node-owned rows"). In-process, dry-run kernels.
"""

from __future__ import annotations

from pathlib import Path

from pbxfw.agent.daemon import Agent, AgentOptions
from pbxfw.kernel.dryrun import DryRunBackend
from pbxfw.usecases import ConfigService
from pbxfw.usecases.ips_state import log_offsets
from pbxfw.usecases.ips_status import ips_status
from pbxfw.usecases.nodes import NodeService
from tests.agent.test_agent_unit import failure, setup


def start(svc: ConfigService, tmp_path: Path, node: str) -> Agent:
    options = AgentOptions(state_dir=str(tmp_path / node), node=node, discover_asterisk=False)
    agent = Agent(svc.store, options, backend=DryRunBackend())
    agent.start()
    return agent


def stop(agent: Agent) -> None:
    agent.flush()
    agent.health.persist(agent.store)
    agent.ips.close()


def test_two_nodes_reading_one_path_keep_their_own_positions_and_counters(
    svc: ConfigService, tmp_path: Path
) -> None:
    log = setup(svc, tmp_path)
    log.write_text(failure("198.51.100.1") * 2)
    a = start(svc, tmp_path, "a")
    a.tick()
    size = log.stat().st_size
    assert log_offsets(svc.store, "a")[str(log)][1] == size
    stop(a)

    # b starts later on the same database: its reading starts at its own
    # beginning, not at a's position; a's row is left alone.
    with log.open("a") as f:
        f.write(failure("198.51.100.2"))
    b = start(svc, tmp_path, "b")
    b.tick()
    stop(b)
    assert log_offsets(svc.store, "b")[str(log)][1] == log.stat().st_size
    assert log_offsets(svc.store, "a")[str(log)][1] == size
    assert log_offsets(svc.store) == {}  # nothing unowned

    # a restarted reads only what it had not read.
    a = start(svc, tmp_path, "a")
    a.tick()
    stop(a)
    assert ips_status(svc.store, node="a").jails["asterisk"]["lines"] == 3
    assert ips_status(svc.store, node="b").jails["asterisk"]["lines"] == 3
    assert ips_status(svc.store).jails["asterisk"]["lines"] == 6
    sources = ips_status(svc.store).sources
    assert {(s.node, s.source) for s in sources if s.is_log} >= {("a", str(log)), ("b", str(log))}
    assert {s.node for s in ips_status(svc.store, node="b").sources} == {"b"}
    # `node rm b` (a PBX that is gone): its sources' health goes with it, its
    # counters stay in the fleet's totals.
    NodeService(svc.store).remove("b")
    assert {s.node for s in ips_status(svc.store).sources} == {"a"}
    assert ips_status(svc.store).jails["asterisk"]["lines"] == 6
