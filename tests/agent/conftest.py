"""Fixtures shared by the agent tests.

The in-process agents of these tests poll the revisions: they drive
``Agent.tick()`` directly, without the wait that takes the database's
notifications (agent.wake), so on PostgreSQL a tick right after a write could
run before the notification arrived. Here they poll, as on SQLite; the
``pbxfw agent`` processes the kernel tests start listen as in production, and
tests/fleet/ tests listening.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.agent.journal_files import JournalFiles, require_journal_tools


@pytest.fixture
def journal(tmp_path: Path) -> JournalFiles:
    """Real journal files in ``tmp_path/journal``, written by systemd-journal-remote."""
    require_journal_tools()
    return JournalFiles(tmp_path / "journal")


@pytest.fixture(autouse=True)
def _in_process_agents_poll(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("pbxfw.agent.daemon.listen_enabled", lambda: False)
