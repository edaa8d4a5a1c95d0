"""Apply with a confirmation window: keep the change only if it is confirmed in time.

``apply_with_confirm`` snapshots the running ``table inet pbxfw``, starts a
detached watchdog process, then applies the new table. Unless ``confirm``
comes before the deadline the watchdog loads the snapshot back — also when the
process that applied was killed (the watchdog runs in its own session,
re-parented to init, and survives SIGKILL of its parent).

State lives in files under ``state_dir/<namespace key>/`` (their format:
``pbxfw.kernel.confirm_state``; the lock: ``pbxfw.kernel.confirm_lock``; both
re-exported here) so any later process
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

A change is *expired* once its deadline has passed (or, after a reboot, its
wall-clock deadline has passed and its watchdog is gone). Whoever notices an
expired change first rolls it back — the watchdog at the deadline, or any
later ``expire`` / ``confirm`` (a confirm that comes too late does not keep
the change) — always under the lock, so it happens once. After restoring, the
watchdog runs the ``after_rollback`` command it was given (pbxfw uses it to
carry the rollback into the stored configuration at once).

Ban elements in the snapshot keep their remaining lifetime: nft prints
``expires`` for each and the restore shortens it by the time elapsed since the
snapshot. Bans added to the new table during the window are not carried over;
the agent re-adds bans it knows after a rollback.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import secrets
import signal
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import asdict
from pathlib import Path

from pbxfw.errors import KernelError
from pbxfw.kernel.backend import Backend
from pbxfw.kernel.confirm_lock import holding_another, locked, locked_folder
from pbxfw.kernel.confirm_state import (
    CANDIDATE_FILE,
    LOG_FILE,
    PENDING_FILE,
    REJECTED_FILE,
    ROLLBACK_FILE,
    SNAPSHOT_FILE,
    PendingChange,
    expired,
    last_rollback,
    namespace_dir,
    pending,
    read_pending,
    watchdog_alive,
    write_atomic,
    write_pending,
)
from pbxfw.kernel.nft import NftBackend

__all__ = [
    "PendingChange",
    "apply_with_confirm",
    "confirm",
    "expire",
    "expired",
    "last_rollback",
    "locked",
    "locked_folder",
    "namespace_dir",
    "pending",
    "read_pending",
    "restore_pending",
    "rollback",
    "shift_expiry",
    "supersede",
]


def _stop_watchdog(change: PendingChange) -> None:
    if watchdog_alive(change.watchdog_pid, change.token):
        assert change.watchdog_pid is not None
        with contextlib.suppress(ProcessLookupError):
            os.kill(change.watchdog_pid, signal.SIGTERM)


def _spawn_watchdog(
    folder: Path,
    token: str,
    after_rollback: Sequence[str] = (),
    hook_env: Mapping[str, str] | None = None,
) -> int:
    """Start ``python -m pbxfw.kernel.watchdog`` fully detached; its pid.

    The watchdog forks once more and reports the grandchild's pid, so it is
    re-parented to init: neither a zombie of a long-running applier nor
    killed with the applier's session or process group. ``after_rollback``
    (an argv) is run by the watchdog after it restored the snapshot, with
    ``hook_env`` added to its environment (the environment, not the command
    line, so that nothing secret shows in ``ps``).
    """
    # Absolute: the watchdog runs in "/".
    argv = [sys.executable, "-m", "pbxfw.kernel.watchdog", "--state", os.path.abspath(folder)]
    argv += ["--token", token]
    if after_rollback:
        argv += ["--after-rollback", json.dumps(list(after_rollback))]
    env = {**os.environ, **hook_env} if hook_env else None
    with open(folder / LOG_FILE, "a") as log:
        proc = subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=log,
            start_new_session=True,
            close_fds=True,
            cwd="/",
            env=env,
        )
    assert proc.stdout is not None
    line = proc.stdout.readline()
    proc.stdout.close()
    proc.wait(timeout=30)
    try:
        return int(line.strip())
    except ValueError:
        raise KernelError(
            f"the rollback watchdog did not start (see {folder / LOG_FILE}); nothing was applied"
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
    snapshot_path = folder / SNAPSHOT_FILE
    if change.had_table and snapshot_path.exists():
        text = snapshot_path.read_text()
        # Negative after a reboot (monotonic time starts again): no shift then.
        elapsed = max(0.0, time.monotonic() - change.snapshot_monotonic)
        try:
            backend.apply(shift_expiry(text, elapsed))
        except KernelError:
            backend.apply(_EXPIRES.sub("", text))
    else:
        backend.delete_table()
    candidate = folder / CANDIDATE_FILE
    if candidate.exists():
        os.replace(candidate, folder / REJECTED_FILE)
    record = {
        "token": change.token,
        "time": time.time(),
        "reason": reason,
        "rejected": str(folder / REJECTED_FILE),
    }
    write_atomic(folder / ROLLBACK_FILE, json.dumps(record, indent=2, sort_keys=True) + "\n")
    (folder / PENDING_FILE).unlink(missing_ok=True)
    snapshot_path.unlink(missing_ok=True)


def apply_with_confirm(
    backend: Backend,
    new_text: str,
    seconds: float,
    state_dir: str | os.PathLike[str],
    *,
    after_rollback: Sequence[str] = (),
    hook_env: Mapping[str, str] | None = None,
) -> PendingChange:
    """Apply ``new_text``; restore the previous table unless confirmed in ``seconds``.

    Order matters for crash safety: snapshot and pending state are written
    and the watchdog is running *before* the kernel changes, so a SIGKILL at
    any point leaves either nothing changed or a watchdog that will restore.
    If the kernel refuses ``new_text`` (KernelError, re-raised) nothing
    changes: a change already pending stays pending with its own deadline.
    ``after_rollback`` / ``hook_env``: what the watchdog runs after it
    restored the snapshot (see ``_spawn_watchdog``).
    """
    if seconds <= 0:
        raise ValueError("the confirmation window must be positive")
    backend.check(new_text)
    folder = namespace_dir(state_dir, backend.netns)
    with locked_folder(folder):
        previous = read_pending(folder)
        if previous is not None:
            _stop_watchdog(previous)
            had_table, snap_time = previous.had_table, previous.snapshot_monotonic
        else:
            snap_time = time.monotonic()
            current = backend.list_table()
            had_table = current is not None
            if current is None:
                (folder / SNAPSHOT_FILE).unlink(missing_ok=True)
            else:
                write_atomic(folder / SNAPSHOT_FILE, current)
        write_atomic(folder / CANDIDATE_FILE, new_text)
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
        write_pending(folder, change)
        pid = _spawn_watchdog(folder, change.token, after_rollback, hook_env)
        # The window starts when the rules change, not before the watchdog's
        # start-up (a second or more on a busy host would eat a short window).
        now, mono = time.time(), time.monotonic()
        change = PendingChange(
            **{
                **asdict(change),
                "watchdog_pid": pid,
                "created": now,
                "deadline": now + seconds,
                "deadline_monotonic": mono + seconds,
            }
        )
        write_pending(folder, change)
        try:
            backend.apply(new_text)
        except BaseException:
            _stop_watchdog(change)
            if previous is not None:
                revived = PendingChange(**{**asdict(previous), "watchdog_pid": None})
                write_pending(folder, revived)
                pid = _spawn_watchdog(folder, previous.token, after_rollback, hook_env)
                write_pending(folder, PendingChange(**{**asdict(previous), "watchdog_pid": pid}))
            else:
                (folder / PENDING_FILE).unlink(missing_ok=True)
                (folder / SNAPSHOT_FILE).unlink(missing_ok=True)
                (folder / CANDIDATE_FILE).unlink(missing_ok=True)
            raise
        return change


def confirm(state_dir: str | os.PathLike[str], netns: str | None = None) -> PendingChange | None:
    """Keep the pending change; stop its watchdog. None when nothing is pending
    (never applied with a window, already confirmed, or already rolled back).

    A confirm that comes after the deadline does not keep the change: if the
    watchdog has not restored the snapshot yet, this does it (and returns
    None), so "confirmed in time" means before the deadline, whoever wins.
    """
    folder = namespace_dir(state_dir, netns)
    with locked_folder(folder):
        change = read_pending(folder)
        if change is None:
            return None
        if expired(change):
            restore_pending(folder, change, "confirmed too late: the window had run out")
            _stop_watchdog(change)
            return None
        (folder / PENDING_FILE).unlink(missing_ok=True)
        (folder / SNAPSHOT_FILE).unlink(missing_ok=True)
        (folder / CANDIDATE_FILE).unlink(missing_ok=True)
        _stop_watchdog(change)
        return change


def rollback(state_dir: str | os.PathLike[str], netns: str | None = None) -> PendingChange | None:
    """Undo the pending change now (restore the snapshot). None when nothing is pending.

    Raises KernelError if the snapshot cannot be loaded; the change then
    stays pending and its watchdog keeps trying at the deadline.
    """
    folder = namespace_dir(state_dir, netns)
    with locked_folder(folder):
        change = read_pending(folder)
        if change is None:
            return None
        restore_pending(folder, change, "rolled back on request")
        _stop_watchdog(change)
        return change


def expire(state_dir: str | os.PathLike[str], netns: str | None = None) -> PendingChange | None:
    """Roll back the pending change if its window has run out; the change or None.

    For whoever notices first (the agent, a command) when the watchdog is
    late or gone (killed, or the host rebooted). Under the lock, so a change
    is restored once. Raises KernelError if the snapshot cannot be loaded
    (the change then stays pending). A caller that holds another
    namespace's lock does not wait for this one (two such callers would
    wait for each other): if it is busy, its holder is acting on it.
    """
    folder = namespace_dir(state_dir, netns)
    if not (folder / PENDING_FILE).exists():
        return None  # the common case, and no folder is created for it
    with locked_folder(folder, wait=not holding_another(folder)) as held:
        if not held:
            return None
        change = read_pending(folder)
        if change is None or not expired(change):
            return None
        restore_pending(folder, change, f"not confirmed within {change.seconds:g} s")
        _stop_watchdog(change)
        return change


def supersede(state_dir: str | os.PathLike[str], netns: str | None = None) -> PendingChange | None:
    """Forget the pending change without restoring it: an apply without a
    window has just replaced the table, and no watchdog may bring the old
    snapshot back over it. The change forgotten, or None."""
    folder = namespace_dir(state_dir, netns)
    if not (folder / PENDING_FILE).exists():
        return None
    with locked_folder(folder):
        change = read_pending(folder)
        if change is None:
            return None
        (folder / PENDING_FILE).unlink(missing_ok=True)
        (folder / SNAPSHOT_FILE).unlink(missing_ok=True)
        (folder / CANDIDATE_FILE).unlink(missing_ok=True)
        _stop_watchdog(change)
        return change
