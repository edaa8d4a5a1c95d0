"""The agent of a site (``pbxfw agent --site b``), in-process with the dry-run
kernel on both engines: it registers its node in its site, loads its site's
configuration (never another's), and follows its site's applied revision."""

from __future__ import annotations

from pathlib import Path

from pbxfw.agent.daemon import Agent, AgentOptions
from pbxfw.kernel.dryrun import DryRunBackend
from pbxfw.usecases import ConfigService, NetworkChange
from pbxfw.usecases.firewall import FirewallService
from pbxfw.usecases.nodes import NodeService
from pbxfw.usecases.sites import SiteService
from tests.agent.test_agent_unit import setup


def test_an_agent_keeps_its_own_sites_configuration(svc: ConfigService, tmp_path: Path) -> None:
    SiteService(svc.store).add("b")
    branch = ConfigService(svc.store, site="b")
    for config, subnet in ((svc, "192.0.2.0/24"), (branch, "198.18.7.0/24")):
        setup(config, tmp_path)
        config.update_settings({"firewall_enabled": True})
        config.add_network(NetworkChange(name="Office", subnet=subnet, allow=["ssh"]))
    backend = DryRunBackend()
    options = AgentOptions(state_dir=str(tmp_path / "state"), node="pbx-b")
    agent = Agent(svc.store.at_site("b"), options, backend=backend)
    agent.start()
    try:
        assert "198.18.7.0/24" in (backend.table or "")
        assert "192.0.2.0/24" not in (backend.table or "")
        [node] = NodeService(svc.store).listing().nodes
        assert (node.name, node.site) == ("pbx-b", "b")

        # default applied: not b's; b's agent keeps b's table.
        FirewallService(
            svc.store, tmp_path / "cli-state", backend=lambda _ns: DryRunBackend()
        ).apply()  # type: ignore[arg-type,return-value]
        agent.tick()
        assert agent.rules.applied_revision is None  # b was never applied
        assert "192.0.2.0/24" not in (backend.table or "")

        # b applied (elsewhere): b's agent loads b's applied configuration.
        branch.add_network(NetworkChange(name="Lab", subnet="203.0.113.0/24", allow=["ssh"]))
        FirewallService(
            svc.store, tmp_path / "cli-state", backend=lambda _ns: DryRunBackend(), site="b"
        ).apply()  # type: ignore[arg-type,return-value]
        agent.tick()
        assert agent.rules.applied_revision == branch.revision()
        assert "203.0.113.0/24" in (backend.table or "")
        assert "192.0.2.0/24" not in (backend.table or "")
    finally:
        agent.ips.close()
