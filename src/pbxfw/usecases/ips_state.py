"""What the agent keeps of its reading between runs: log positions and counters.

A file's position is (inode, offset); a ``journal:`` source's is the
journal's cursor of the last entry read. The agent is the only writer;
``pbxfw.usecases.ips_status`` reads the counters back for the CLI, the REST
API and the web page.
"""

from __future__ import annotations

from collections.abc import Mapping

from pbxfw.storage.repository import Store

__all__ = ["add_ips_counters", "journal_cursors", "log_offsets", "save_log_offsets"]


def log_offsets(store: Store) -> dict[str, tuple[int, int]]:
    """Path → (inode, offset) where the agent stopped reading each log file."""
    with store.read() as repo:
        return repo.log_offsets()


def journal_cursors(store: Store) -> dict[str, str]:
    """``journal:`` source → the cursor of the last entry the agent read."""
    with store.read() as repo:
        return repo.journal_cursors()


def save_log_offsets(
    store: Store,
    offsets: Mapping[str, tuple[int, int]],
    now: float,
    cursors: Mapping[str, str] | None = None,
) -> None:
    """Store where reading stopped, for every file in ``offsets`` and every
    journal source in ``cursors`` (one transaction)."""
    with store.write() as repo:
        for path, (inode, offset) in offsets.items():
            repo.save_log_offset(path, inode, offset, now)
        for source, cursor in (cursors or {}).items():
            repo.save_journal_cursor(source, cursor, now)


def add_ips_counters(store: Store, counters: Mapping[str, Mapping[str, int]]) -> None:
    """Add ``counters`` (jail → {counter: increment}) to the stored ones (one transaction)."""
    with store.write() as repo:
        for jail, counts in counters.items():
            repo.add_ips_counters(jail, **counts)
