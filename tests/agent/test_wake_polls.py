"""On SQLite nothing listens: the agent polls the revisions as before (agent.wake)."""

from __future__ import annotations

from pathlib import Path

import pytest

from pbxfw.agent.daemon import Agent, AgentOptions
from pbxfw.kernel.dryrun import DryRunBackend
from pbxfw.usecases import ConfigService
from pbxfw.usecases.bans import BanService
from tests.agent.test_agent_unit import setup


@pytest.mark.sqlite_only  # PostgreSQL listens: tests/fleet/test_wake.py
def test_on_sqlite_the_agent_polls(svc: ConfigService, tmp_path: Path) -> None:
    setup(svc, tmp_path)
    backend = DryRunBackend()
    options = AgentOptions(state_dir=str(tmp_path / "state"), listen=True)
    agent = Agent(svc.store, options, backend=backend)
    agent.start()
    assert not agent.wake.enabled and agent.wake.fds() == []
    BanService(svc.store).add("203.0.113.12", jail="ssh", seconds=600)
    agent.tick()  # no notification on SQLite: the tick reads the revision
    assert ("203.0.113.12/32", "ssh") in backend.bans
    agent.ips.close()
