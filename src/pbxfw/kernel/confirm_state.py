"""The confirmation state on disk: one folder per namespace, its files, their format.

``namespace_dir`` names the folder; ``PendingChange`` is ``pending.json``
(written atomically by ``write_pending``, read by ``read_pending``, which
takes a torn or foreign file for no change); ``last_rollback`` reads
``rollback.json``; ``expired`` says whether a change's window has run out
(its watchdog is found through ``/proc``). The other files are listed in
``pbxfw.kernel.confirm``, which acts on them; the lock is
``pbxfw.kernel.confirm_lock``.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import asdict, dataclass
from pathlib import Path

__all__ = [
    "CANDIDATE_FILE",
    "LOG_FILE",
    "PENDING_FILE",
    "REJECTED_FILE",
    "ROLLBACK_FILE",
    "SNAPSHOT_FILE",
    "PendingChange",
    "expired",
    "last_rollback",
    "namespace_dir",
    "pending",
    "read_pending",
    "watchdog_alive",
    "write_atomic",
    "write_pending",
]

PENDING_FILE = "pending.json"
SNAPSHOT_FILE = "snapshot.nft"
CANDIDATE_FILE = "candidate.nft"
REJECTED_FILE = "rejected.nft"
ROLLBACK_FILE = "rollback.json"
LOG_FILE = "watchdog.log"


@dataclass(frozen=True, slots=True)
class PendingChange:
    """A change applied but not yet confirmed.

    ``deadline`` is wall-clock (for display); the watchdog waits on
    ``deadline_monotonic`` (CLOCK_MONOTONIC, shared by all processes and
    immune to clock changes). ``had_table``: whether a pbxfw table existed
    before (a rollback without one deletes the table).
    """

    token: str
    netns: str | None
    seconds: float
    created: float
    deadline: float
    deadline_monotonic: float
    snapshot_monotonic: float
    had_table: bool
    watchdog_pid: int | None = None

    def remaining(self) -> float:
        """Seconds left before the automatic rollback (≥ 0)."""
        return max(0.0, self.deadline_monotonic - time.monotonic())

    def as_json(self) -> dict[str, object]:
        return {**asdict(self), "remaining": round(self.remaining(), 3)}


def namespace_dir(state_dir: str | os.PathLike[str], netns: str | None) -> Path:
    """The folder holding one namespace's confirmation state."""
    if netns is not None and (not netns or "/" in netns or netns.startswith(".")):
        raise ValueError(f"{netns!r} is not a network namespace name")
    return Path(state_dir) / ("host" if netns is None else f"netns-{netns}")


def write_atomic(path: Path, text: str) -> None:
    """Atomically: a reader sees the old file or the new one."""
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "w") as handle:
        handle.write(text)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(tmp, path)


def read_pending(folder: Path) -> PendingChange | None:
    """The pending change recorded in ``folder`` (a ``namespace_dir``), or
    None: nothing pending, or a file that cannot be read or parsed (a torn
    or foreign file is treated as no change, never as an error)."""
    try:
        data = json.loads((folder / PENDING_FILE).read_text())
    except FileNotFoundError:
        return None
    except (OSError, ValueError):
        return None
    try:
        return PendingChange(**data)
    except TypeError:
        return None


def write_pending(folder: Path, change: PendingChange) -> None:
    write_atomic(folder / PENDING_FILE, json.dumps(asdict(change), indent=2, sort_keys=True) + "\n")


def pending(state_dir: str | os.PathLike[str], netns: str | None = None) -> PendingChange | None:
    """The change waiting for confirmation in ``netns``, or None."""
    return read_pending(namespace_dir(state_dir, netns))


def last_rollback(
    state_dir: str | os.PathLike[str], netns: str | None = None
) -> dict[str, object] | None:
    """The last rollback: ``{"token", "time", "reason", "rejected"}`` or None.

    ``rejected`` is the path of the table that was not confirmed; ``pbxfw``
    can show it and apply it again.
    """
    folder = namespace_dir(state_dir, netns)
    try:
        data: dict[str, object] = json.loads((folder / ROLLBACK_FILE).read_text())
    except (OSError, ValueError):
        return None
    return data


def watchdog_alive(pid: int | None, token: str) -> bool:
    """``pid`` is running and is the watchdog of ``token`` (not a reused pid)."""
    if not pid:
        return False
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return False
    return token.encode() in cmdline and b"pbxfw.kernel.watchdog" in cmdline


def expired(change: PendingChange) -> bool:
    """The confirmation window of ``change`` has run out.

    The monotonic deadline decides; after a reboot (monotonic time starts
    again, the watchdog is gone) the wall-clock deadline does.
    """
    if change.remaining() <= 0:
        return True
    return time.time() >= change.deadline and not watchdog_alive(change.watchdog_pid, change.token)
