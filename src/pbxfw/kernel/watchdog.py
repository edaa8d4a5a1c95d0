"""The rollback watchdog: ``python -m pbxfw.kernel.watchdog --state DIR --token T``.

Started by ``apply_with_confirm``. It forks once (so it is re-parented to
init and outlives the applier, even a SIGKILLed one), prints its pid on
stdout for the applier, then waits for the pending change's deadline. At the
deadline, under the state lock, it restores the snapshot — but only if the
pending change still carries its token: a confirm, a rollback or a newer
apply makes it exit without touching anything.

After a restore it runs the ``--after-rollback`` command (a JSON argv), once,
outside the lock: pbxfw passes the command that carries the rollback into
the stored configuration, so storage follows the kernel back at once. That
step is exactly-once on its own (whoever carries a rollback first wins), so a
hook that fails or runs late leaves it to the next party that notices.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from pbxfw.errors import PbxfwError
from pbxfw.kernel.confirm import restore_pending
from pbxfw.kernel.confirm_lock import locked_folder
from pbxfw.kernel.confirm_state import read_pending

__all__ = ["main", "watch"]

log = logging.getLogger("pbxfw.kernel.watchdog")

#: How often the pending state is re-read while waiting: a confirm is
#: noticed within this time even if the SIGTERM is lost.
POLL_SECONDS = 0.25
#: Restore attempts at the deadline (a busy kernel or nft may fail once).
ATTEMPTS = 3
#: Seconds the --after-rollback command may take (it waits for the database).
HOOK_TIMEOUT = 60.0


def watch(folder: Path, token: str, after_rollback: Sequence[str] = ()) -> int:
    """Wait for the deadline of the pending change ``token``; restore if still pending.

    After a restore, ``after_rollback`` (an argv, if any) is run once.
    """
    failures = 0
    while True:
        change = read_pending(folder)
        if change is None or change.token != token:
            log.info("change %s is no longer pending; nothing to do", token[:8])
            return 0
        remaining = change.deadline_monotonic - time.monotonic()
        if remaining > 0:
            time.sleep(min(remaining, POLL_SECONDS))
            continue
        with locked_folder(folder):
            change = read_pending(folder)
            if change is None or change.token != token:
                return 0
            if change.deadline_monotonic > time.monotonic():
                continue  # the applier moved the deadline to when the rules changed
            try:
                restore_pending(folder, change, f"not confirmed within {change.seconds:g} s")
            except PbxfwError as exc:
                failures += 1
                log.error("rollback of %s failed (attempt %d): %s", token[:8], failures, exc)
            else:
                log.warning("change %s not confirmed in time: previous table restored", token[:8])
                break
        if failures >= ATTEMPTS:
            return 1
        time.sleep(1.0)
    run_hook(after_rollback)
    return 0


def run_hook(argv: Sequence[str]) -> bool:
    """Run ``argv`` (stdout and stderr to the watchdog's log); True when it succeeded."""
    if not argv:
        return True
    try:
        done = subprocess.run(
            list(argv),
            stdin=subprocess.DEVNULL,
            stdout=sys.stderr,
            stderr=sys.stderr,
            timeout=HOOK_TIMEOUT,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        log.error("after-rollback command failed: %s", exc)
        return False
    if done.returncode != 0:
        log.error("after-rollback command exited with %d", done.returncode)
        return False
    return True


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m pbxfw.kernel.watchdog")
    parser.add_argument("--state", required=True, type=Path, help="the namespace's state folder")
    parser.add_argument("--token", required=True, help="the pending change this watchdog guards")
    parser.add_argument("--foreground", action="store_true", help="do not fork (debugging)")
    parser.add_argument("--after-rollback", default="[]", help="JSON argv to run after a restore")
    args = parser.parse_args(argv)
    try:
        hook = json.loads(args.after_rollback)
        if not isinstance(hook, list) or not all(isinstance(a, str) for a in hook):
            raise ValueError("not a list of strings")
    except ValueError as exc:
        parser.error(f"--after-rollback: {exc}")
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s watchdog[%(process)d] %(levelname)s %(message)s"
    )
    if not args.foreground:
        pid = os.fork()
        if pid:
            # The intermediate parent: report the watchdog's pid and leave at
            # once, so the watchdog is adopted by init.
            sys.stdout.write(f"{pid}\n")
            sys.stdout.flush()
            os._exit(0)
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, 1)
        os.close(devnull)
    else:
        sys.stdout.write(f"{os.getpid()}\n")
        sys.stdout.flush()
    return watch(args.state, args.token, hook)


if __name__ == "__main__":
    sys.exit(main())
