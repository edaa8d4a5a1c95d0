"""Fixtures shared by the agent tests."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.agent.journal_files import JournalFiles, require_journal_tools


@pytest.fixture
def journal(tmp_path: Path) -> JournalFiles:
    """Real journal files in ``tmp_path/journal``, written by systemd-journal-remote."""
    require_journal_tools()
    return JournalFiles(tmp_path / "journal")
