"""The in-process agents of these tests poll the revisions.

They drive ``Agent.tick()`` directly, without the wait that takes the
database's notifications (agent.wake), so on PostgreSQL a tick right after a
write could run before the notification arrived. Here they poll, as on
SQLite; the ``pbxfw agent`` processes the kernel tests start listen as in
production, and tests/agent/test_wake.py and tests/fleet/ test listening.
"""

from __future__ import annotations

import pytest


@pytest.fixture(autouse=True)
def _in_process_agents_poll(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("pbxfw.agent.daemon.listen_enabled", lambda: False)
