"""Apply with a confirmation window: keep the change only if it is confirmed in time.

``apply_with_confirm`` snapshots the running ``table inet pbxfw``, starts a
detached watchdog process, then applies the new table. Unless ``confirm``
comes before the deadline the watchdog loads the snapshot back — also when the
process that applied was killed (the watchdog runs in its own session,
re-parented to init, and survives SIGKILL of its parent).

State lives in files under ``state_dir/<namespace key>/`` so any later process
(``pbxfw confirm``, ``pbxfw rollback``, the web page) can act on it::

    lock            flock(2): one actor at a time (confirm vs. watchdog race)
    pending.json    the pending change: token, deadline, watchdog pid
    snapshot.nft    the table before the change (absent: there was none)
    candidate.nft   the unconfirmed table
    rejected.nft    after a rollback: the table that was not confirmed
    rollback.json   after a rollback: when, why, token
    watchdog.log    what the watchdogs did

A token ties a watchdog to one pending change: a watchdog whose token is no
longer the pending one exits without touching anything, so a confirm, a
rollback or a newer apply can never be undone by a stale watchdog. Applying
again while a change is pending keeps the *first* snapshot: a rollback always
returns to the last confirmed table.

Ban elements in the snapshot keep their remaining lifetime: nft prints
``expires`` for each and the restore shortens it by the time elapsed since the
snapshot. Bans added to the new table during the window are not carried over;
the agent re-adds bans it knows after a rollback.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import re
import secrets
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path

from pbxfw.errors import KernelError
from pbxfw.kernel.nft import NftBackend

__all__ = [
    "PendingChange",
    "apply_with_confirm",
    "confirm",
    "last_rollback",
    "namespace_dir",
    "pending",
    "restore_pending",
    "rollback",
    "shift_expiry",
]

_PENDING = "pending.json"
_SNAPSHOT = "snapshot.nft"
_CANDIDATE = "candidate.nft"
_REJECTED = "rejected.nft"
_ROLLBACK = "rollback.json"
_LOG = "watchdog.log"


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


@contextlib.contextmanager
def _locked(folder: Path) -> Iterator[None]:
    folder.mkdir(parents=True, exist_ok=True)
    with open(folder / "lock", "a+") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _write(path: Path, text: str) -> None:
    """Atomically: a reader sees the old file or the new one."""
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "w") as handle:
        handle.write(text)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(tmp, path)


def _read_pending(folder: Path) -> PendingChange | None:
    try:
        data = json.loads((folder / _PENDING).read_text())
    except FileNotFoundError:
        return None
    except (OSError, ValueError):
        return None
    try:
        return PendingChange(**data)
    except TypeError:
        return None


def _write_pending(folder: Path, change: PendingChange) -> None:
    _write(folder / _PENDING, json.dumps(asdict(change), indent=2, sort_keys=True) + "\n")


def pending(state_dir: str | os.PathLike[str], netns: str | None = None) -> PendingChange | None:
    """The change waiting for confirmation in ``netns``, or None."""
    return _read_pending(namespace_dir(state_dir, netns))


def last_rollback(
    state_dir: str | os.PathLike[str], netns: str | None = None
) -> dict[str, object] | None:
    """The last rollback: ``{"token", "time", "reason", "rejected"}`` or None.

    ``rejected`` is the path of the table that was not confirmed; ``pbxfw``
    can show it and apply it again.
    """
    folder = namespace_dir(state_dir, netns)
    try:
        data: dict[str, object] = json.loads((folder / _ROLLBACK).read_text())
    except (OSError, ValueError):
        return None
    return data


def _watchdog_alive(pid: int | None, token: str) -> bool:
    """``pid`` is running and is the watchdog of ``token`` (not a reused pid)."""
    if not pid:
        return False
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return False
    return token.encode() in cmdline and b"pbxfw.kernel.watchdog" in cmdline


def _stop_watchdog(change: PendingChange) -> None:
    if _watchdog_alive(change.watchdog_pid, change.token):
        assert change.watchdog_pid is not None
        with contextlib.suppress(ProcessLookupError):
            os.kill(change.watchdog_pid, signal.SIGTERM)


def _spawn_watchdog(folder: Path, token: str) -> int:
    """Start ``python -m pbxfw.kernel.watchdog`` fully detached; its pid.

    The watchdog forks once more and reports the grandchild's pid, so it is
    re-parented to init: neither a zombie of a long-running applier nor
    killed with the applier's session or process group.
    """
    with open(folder / _LOG, "a") as log:
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "pbxfw.kernel.watchdog",
                "--state",
                str(folder),
                "--token",
                token,
            ],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=log,
            start_new_session=True,
            close_fds=True,
            cwd="/",
        )
    assert proc.stdout is not None
    line = proc.stdout.readline()
    proc.stdout.close()
    proc.wait(timeout=30)
    try:
        return int(line.strip())
    except ValueError:
        raise KernelError(
            f"the rollback watchdog did not start (see {folder / _LOG}); nothing was applied"
        ) from None


_EXPIRES = re.compile(r"\bexpires ((?:\d+(?:ms|d|h|m|s))+)")
_PART = re.compile(r"(\d+)(ms|d|h|m|s)")
_MS = {"ms": 1, "s": 1000, "m": 60_000, "h": 3_600_000, "d": 86_400_000}


def shift_expiry(table_text: str, elapsed_seconds: float) -> str:
    """``table_text`` with every ``expires T`` shortened by ``elapsed_seconds``.

    nft prints the remaining lifetime of each timed element as ``expires``;
    loading it back restores that lifetime, so a snapshot restored later must
    subtract the time that has passed. An element already past its end gets
    1 ms and lapses at once. (pbxfw writes no text of the administrator into
    the table, so ``expires`` cannot appear inside a comment.)
    """
    elapsed_ms = int(elapsed_seconds * 1000)

    def shorten(match: re.Match[str]) -> str:
        total = sum(int(n) * _MS[unit] for n, unit in _PART.findall(match.group(1)))
        return f"expires {max(1, total - elapsed_ms)}ms"

    return _EXPIRES.sub(shorten, table_text)


def restore_pending(folder: Path, change: PendingChange, reason: str) -> None:
    """Load ``change``'s snapshot back and record the rollback. Caller holds the lock.

    If the kernel refuses the snapshot with its expiry (it never should), the
    snapshot is loaded once more without expiry, so the old rules come back
    whatever happens; bans then get their full timeout again.
    """
    backend = NftBackend(change.netns)
    snapshot_path = folder / _SNAPSHOT
    if change.had_table and snapshot_path.exists():
        text = snapshot_path.read_text()
        try:
            backend.apply(shift_expiry(text, time.monotonic() - change.snapshot_monotonic))
        except KernelError:
            backend.apply(_EXPIRES.sub("", text))
    else:
        backend.delete_table()
    candidate = folder / _CANDIDATE
    if candidate.exists():
        os.replace(candidate, folder / _REJECTED)
    record = {
        "token": change.token,
        "time": time.time(),
        "reason": reason,
        "rejected": str(folder / _REJECTED),
    }
    _write(folder / _ROLLBACK, json.dumps(record, indent=2, sort_keys=True) + "\n")
    (folder / _PENDING).unlink(missing_ok=True)
    snapshot_path.unlink(missing_ok=True)


def apply_with_confirm(
    backend: NftBackend,
    new_text: str,
    seconds: float,
    state_dir: str | os.PathLike[str],
) -> PendingChange:
    """Apply ``new_text``; restore the previous table unless confirmed in ``seconds``.

    Order matters for crash safety: snapshot and pending state are written
    and the watchdog is running *before* the kernel changes, so a SIGKILL at
    any point leaves either nothing changed or a watchdog that will restore.
    If the kernel refuses ``new_text`` (KernelError, re-raised) nothing
    changes: a change already pending stays pending with its own deadline.
    """
    if seconds <= 0:
        raise ValueError("the confirmation window must be positive")
    backend.check(new_text)
    folder = namespace_dir(state_dir, backend.netns)
    with _locked(folder):
        previous = _read_pending(folder)
        if previous is not None:
            _stop_watchdog(previous)
            had_table, snap_time = previous.had_table, previous.snapshot_monotonic
        else:
            snap_time = time.monotonic()
            current = backend.list_table()
            had_table = current is not None
            if current is None:
                (folder / _SNAPSHOT).unlink(missing_ok=True)
            else:
                _write(folder / _SNAPSHOT, current)
        _write(folder / _CANDIDATE, new_text)
        now, mono = time.time(), time.monotonic()
        change = PendingChange(
            token=secrets.token_hex(16),
            netns=backend.netns,
            seconds=float(seconds),
            created=now,
            deadline=now + seconds,
            deadline_monotonic=mono + seconds,
            snapshot_monotonic=snap_time,
            had_table=had_table,
        )
        _write_pending(folder, change)
        pid = _spawn_watchdog(folder, change.token)
        change = PendingChange(**{**asdict(change), "watchdog_pid": pid})
        _write_pending(folder, change)
        try:
            backend.apply(new_text)
        except BaseException:
            _stop_watchdog(change)
            if previous is not None:
                revived = PendingChange(**{**asdict(previous), "watchdog_pid": None})
                _write_pending(folder, revived)
                pid = _spawn_watchdog(folder, previous.token)
                _write_pending(folder, PendingChange(**{**asdict(previous), "watchdog_pid": pid}))
            else:
                (folder / _PENDING).unlink(missing_ok=True)
                (folder / _SNAPSHOT).unlink(missing_ok=True)
                (folder / _CANDIDATE).unlink(missing_ok=True)
            raise
        return change


def confirm(state_dir: str | os.PathLike[str], netns: str | None = None) -> PendingChange | None:
    """Keep the pending change; stop its watchdog. None when nothing is pending
    (never applied with a window, already confirmed, or already rolled back)."""
    folder = namespace_dir(state_dir, netns)
    with _locked(folder):
        change = _read_pending(folder)
        if change is None:
            return None
        (folder / _PENDING).unlink(missing_ok=True)
        (folder / _SNAPSHOT).unlink(missing_ok=True)
        (folder / _CANDIDATE).unlink(missing_ok=True)
        _stop_watchdog(change)
        return change


def rollback(state_dir: str | os.PathLike[str], netns: str | None = None) -> PendingChange | None:
    """Undo the pending change now (restore the snapshot). None when nothing is pending.

    Raises KernelError if the snapshot cannot be loaded; the change then
    stays pending and its watchdog keeps trying at the deadline.
    """
    folder = namespace_dir(state_dir, netns)
    with _locked(folder):
        change = _read_pending(folder)
        if change is None:
            return None
        restore_pending(folder, change, "rolled back on request")
        _stop_watchdog(change)
        return change
