"""What the agent keeps of its reading between runs: log positions and counters.

A file's position is (inode, offset); a ``journal:`` source's is the
journal's cursor of the last entry read. Each node's agent writes its own
rows (``node``: its node name; migration 0009), the only writer of them;
``pbxfw.usecases.ips_status`` reads the counters back for the CLI, the REST
API and the web page.
"""

from __future__ import annotations

from collections.abc import Mapping

from pbxfw.storage.node_rows import adopt_unowned
from pbxfw.storage.repository import Store

__all__ = [
    "add_ips_counters",
    "journal_cursors",
    "log_offsets",
    "reading_positions",
    "save_log_offsets",
]


def log_offsets(store: Store, node: str = "") -> dict[str, tuple[int, int]]:
    """Path → (inode, offset) where ``node``'s agent stopped reading each log file."""
    with store.read() as repo:
        return repo.log_offsets(node)


def journal_cursors(store: Store, node: str = "") -> dict[str, str]:
    """``journal:`` source → the cursor of the last entry ``node``'s agent read."""
    with store.read() as repo:
        return repo.journal_cursors(node)


def reading_positions(store: Store, node: str) -> dict[str, tuple[int, int] | str]:
    """Where ``node``'s agent stopped reading: path → (inode, offset) of each
    file, ``journal:`` source → cursor; rows stored before nodes owned them
    are taken over first (storage.node_rows ``adopt_unowned``), in the same
    transaction."""
    with store.write() as repo:
        adopt_unowned(repo, node)
        return {**repo.log_offsets(node), **repo.journal_cursors(node)}


def save_log_offsets(
    store: Store,
    offsets: Mapping[str, tuple[int, int]],
    now: float,
    cursors: Mapping[str, str] | None = None,
    node: str = "",
) -> None:
    """Store where ``node``'s reading stopped, for every file in ``offsets``
    and every journal source in ``cursors`` (one transaction)."""
    with store.write() as repo:
        for path, (inode, offset) in offsets.items():
            repo.save_log_offset(path, inode, offset, now, node=node)
        for source, cursor in (cursors or {}).items():
            repo.save_journal_cursor(source, cursor, now, node=node)


def add_ips_counters(
    store: Store, counters: Mapping[str, Mapping[str, int]], node: str = ""
) -> None:
    """Add ``counters`` (jail → {counter: increment}) to ``node``'s stored ones (one transaction)."""
    with store.write() as repo:
        for jail, counts in counters.items():
            repo.add_ips_counters(jail, node=node, **counts)
