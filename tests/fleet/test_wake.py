"""The agent wakes on PostgreSQL notifications (agent.wake, storage.notify).

In-process, on a real PostgreSQL server, with the dry-run backend: a write
of bans or of the configuration is notified when it commits (and not when it
rolls back); the agent's wait ends at once on it, with a polling interval of
5 s that would otherwise hide it; a listening connection ended by the server
(``pg_terminate_backend``) is logged once, the agent polls meanwhile, and
connects again.
"""

from __future__ import annotations

import logging
import select
import time
from pathlib import Path

import psycopg
import pytest

from pbxfw.agent.daemon import Agent, AgentOptions
from pbxfw.agent.wake import LISTEN_PART
from pbxfw.kernel.dryrun import DryRunBackend
from pbxfw.storage.notify import Listener
from pbxfw.usecases import ConfigService
from pbxfw.usecases.bans import BanDelta, BanService
from pbxfw.usecases.firewall import FirewallService
from tests.agent.test_agent_unit import setup


def received(listener: Listener, timeout: float = 2.0) -> list[str]:
    """The payloads that arrive within ``timeout`` (bounded; after the first, 0.2 s more)."""
    payloads: list[str] = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        ready, _, _ = select.select([listener.fileno()], [], [], 0.2)
        if ready:
            payloads += listener.received()
        elif payloads:
            break
    return payloads


def terminate(db_url: str, pid: int) -> None:
    """End the server process ``pid`` as an administrator would."""
    conninfo = db_url.replace("postgresql+psycopg://", "postgresql://")
    with psycopg.connect(conninfo, autocommit=True) as admin:
        admin.execute("SELECT pg_terminate_backend(%s)", (pid,))


def test_writes_are_notified_at_commit_and_a_rollback_sends_nothing(
    svc: ConfigService, tmp_path: Path
) -> None:
    listener = Listener(svc.store.engine)
    try:
        bans = BanService(svc.store)
        bans.add("203.0.113.7", jail="ssh", seconds=600)
        revision = bans.revision()
        assert received(listener) == [f"bans_revision:{revision}"]

        svc.update_settings({"ips_maxretry": "4"})
        assert received(listener) == [f"revision:{svc.revision()}"]

        firewall = FirewallService(svc.store, str(tmp_path / "state"), backend=DryRunBackend)
        firewall.apply()
        assert f"applied_revision:{svc.revision()}" in received(listener)

        # A write that fails rolls back: nothing is sent.
        with pytest.raises(RuntimeError), svc.store.write() as repo:
            repo.set_meta("bans_revision", "999")
            raise RuntimeError("after the write, before the commit")
        assert received(listener, timeout=0.5) == []
    finally:
        listener.close()


def test_a_ban_stored_elsewhere_wakes_the_agent_at_once(svc: ConfigService, tmp_path: Path) -> None:
    setup(svc, tmp_path)
    backend = DryRunBackend()
    # 5 s between polls: only a notification can make it within the bound below.
    options = AgentOptions(state_dir=str(tmp_path / "state"), revision_interval=5.0, listen=True)
    agent = Agent(svc.store, options, backend=backend)
    try:
        agent.start()
        assert agent.wake.listening
        agent._wait()  # the notifications of the start's own writes, if any
        agent.tick()

        start = time.monotonic()
        BanService(svc.store).add("203.0.113.9", jail="asterisk", seconds=600)
        agent._wait()
        agent.tick()
        took = time.monotonic() - start
        assert ("203.0.113.9/32", "asterisk") in backend.bans
        assert took < 1.0, took

        # Nothing notified: a tick reads no revision (no polling while listening).
        reads: list[int | None] = []
        changed_since = agent.rules.bans.changed_since

        def counted(revision: int | None) -> BanDelta:
            reads.append(revision)
            return changed_since(revision)

        agent.rules.bans.changed_since = counted  # type: ignore[method-assign]
        agent.tick()
        agent.tick()
        assert reads == []
    finally:
        agent.ips.close()
        agent.wake.close()


def test_a_lost_listening_connection_falls_back_to_polling_and_reconnects(
    svc: ConfigService, db_url: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    setup(svc, tmp_path)
    backend = DryRunBackend()
    options = AgentOptions(state_dir=str(tmp_path / "state"), revision_interval=0.2, listen=True)
    agent = Agent(svc.store, options, backend=backend)
    try:
        agent.start()
        listener = agent.wake.listener
        assert listener is not None
        caplog.set_level(logging.INFO, logger="pbxfw.agent")
        terminate(db_url, listener.backend_pid())

        # The socket turns readable: the server's farewell, then its end.
        for _ in range(20):
            agent._wait()
            if not agent.wake.listening:
                break
        assert not agent.wake.listening
        # Polling meanwhile: a ban stored now reaches the kernel at the next tick.
        BanService(svc.store).add("203.0.113.10", jail="asterisk", seconds=600)
        agent.tick()
        assert ("203.0.113.10/32", "asterisk") in backend.bans
        for _ in range(3):
            agent._wait()
            agent.tick()
        lost = [r for r in caplog.records if "polling the database" in r.getMessage()]
        assert len(lost) == 1, [r.getMessage() for r in caplog.records]

        # Connected again after the backoff (1 s), and listening: a ban wakes it.
        deadline = time.monotonic() + 5
        while not agent.wake.listening and time.monotonic() < deadline:
            agent._wait()
            agent.tick()
        assert agent.wake.listening
        assert LISTEN_PART not in {s.source for s in agent.health.failing()}
        BanService(svc.store).add("203.0.113.11", jail="asterisk", seconds=600)
        agent.options.revision_interval = 5.0
        start = time.monotonic()
        agent._wait()
        agent.tick()
        assert ("203.0.113.11/32", "asterisk") in backend.bans
        assert time.monotonic() - start < 1.0
    finally:
        agent.ips.close()
        agent.wake.close()
