"""The confirmation lock: flock(2) on ``<namespace folder>/lock``, re-entrant per thread.

One actor at a time per namespace (apply, confirm, rollback, expire, the
watchdog), so a change is restored or kept exactly once.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import threading
from collections.abc import Iterator
from pathlib import Path

from pbxfw.kernel.confirm_state import namespace_dir

__all__ = ["holding_another", "locked", "locked_folder"]

#: The folders whose lock this thread holds, with the nesting depth.
_held = threading.local()


@contextlib.contextmanager
def locked_folder(folder: Path, *, wait: bool = True) -> Iterator[bool]:
    """flock(2) on ``folder/lock`` (a ``namespace_dir``); re-entrant within
    one thread. Yields whether the lock is held (always True unless ``wait``
    is False). ``locked`` is the same, by state folder and namespace; the
    watchdog, which is given the namespace's folder, uses this one.

    Re-entrant so that a use case can hold the lock around a whole
    read-decide-apply sequence that calls ``apply_with_confirm`` or
    ``confirm`` (which lock too). Other threads and processes wait.
    """
    folder.mkdir(parents=True, exist_ok=True)
    key = os.path.realpath(folder)
    depth: dict[str, int] = _held.__dict__.setdefault("depth", {})
    if depth.get(key):
        depth[key] += 1
        try:
            yield True
        finally:
            depth[key] -= 1
        return
    with open(folder / "lock", "a+") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX if wait else fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            yield False
            return
        depth[key] = 1
        try:
            yield True
        finally:
            depth[key] = 0
            fcntl.flock(handle, fcntl.LOCK_UN)


def holding_another(folder: Path) -> bool:
    """This thread holds the lock of a folder other than ``folder``."""
    depth: dict[str, int] = _held.__dict__.get("depth", {})
    key = os.path.realpath(folder)
    return any(n for k, n in depth.items() if k != key)


@contextlib.contextmanager
def locked(state_dir: str | os.PathLike[str], netns: str | None = None) -> Iterator[None]:
    """Hold ``netns``'s confirmation lock: no watchdog, confirm, rollback or
    apply of that namespace acts meanwhile (re-entrant within one thread)."""
    with locked_folder(namespace_dir(state_dir, netns)):
        yield
