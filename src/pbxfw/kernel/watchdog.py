"""The rollback watchdog: ``python -m pbxfw.kernel.watchdog --state DIR --token T``.

Started by ``apply_with_confirm``. It forks once (so it is re-parented to
init and outlives the applier, even a SIGKILLed one), prints its pid on
stdout for the applier, then waits for the pending change's deadline. At the
deadline, under the state lock, it restores the snapshot — but only if the
pending change still carries its token: a confirm, a rollback or a newer
apply makes it exit without touching anything.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import time
from pathlib import Path

from pbxfw.errors import PbxfwError
from pbxfw.kernel.confirm import _locked, _read_pending, restore_pending

__all__ = ["main", "watch"]

log = logging.getLogger("pbxfw.kernel.watchdog")

#: How often the pending state is re-read while waiting: a confirm is
#: noticed within this time even if the SIGTERM is lost.
POLL_SECONDS = 0.25
#: Restore attempts at the deadline (a busy kernel or nft may fail once).
ATTEMPTS = 3


def watch(folder: Path, token: str) -> int:
    """Wait for the deadline of the pending change ``token``; restore if still pending."""
    while True:
        change = _read_pending(folder)
        if change is None or change.token != token:
            log.info("change %s is no longer pending; nothing to do", token[:8])
            return 0
        remaining = change.deadline_monotonic - time.monotonic()
        if remaining <= 0:
            break
        time.sleep(min(remaining, POLL_SECONDS))
    for attempt in range(1, ATTEMPTS + 1):
        with _locked(folder):
            change = _read_pending(folder)
            if change is None or change.token != token:
                return 0
            try:
                restore_pending(folder, change, f"not confirmed within {change.seconds:g} s")
            except PbxfwError as exc:
                log.error("rollback of %s failed (attempt %d): %s", token[:8], attempt, exc)
            else:
                log.warning("change %s not confirmed in time: previous table restored", token[:8])
                return 0
        time.sleep(1.0)
    return 1


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m pbxfw.kernel.watchdog")
    parser.add_argument("--state", required=True, type=Path, help="the namespace's state folder")
    parser.add_argument("--token", required=True, help="the pending change this watchdog guards")
    parser.add_argument("--foreground", action="store_true", help="do not fork (debugging)")
    args = parser.parse_args(argv)
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
    return watch(args.state, args.token)


if __name__ == "__main__":
    sys.exit(main())
