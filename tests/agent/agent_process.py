"""The real ``pbxfw`` CLI and ``pbxfw agent`` as processes, for the kernel tests here."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

__all__ = ["PBXFW", "run_pbxfw", "start_agent", "stop_agent", "wait_until"]

PBXFW = str(Path(sys.executable).with_name("pbxfw"))


def run_pbxfw(db: Path | str, *args: str) -> subprocess.CompletedProcess[str]:
    """``pbxfw ARGS --db DB``, its output captured."""
    return subprocess.run(
        [PBXFW, *args, "--db", str(db)], capture_output=True, text=True, timeout=60
    )


def start_agent(netns: str, db: Path | str, tmp: Path, *extra: str) -> subprocess.Popen[str]:
    """``pbxfw agent`` in ``netns``, its state in ``tmp/state``, its output
    appended to ``tmp/agent.log``."""
    # The child holds its own copy of the descriptor: ours is closed at once.
    with open(tmp / "agent.log", "a") as log:
        return subprocess.Popen(
            [
                PBXFW,
                "agent",
                "--netns",
                netns,
                "--db",
                str(db),
                "--state-dir",
                str(tmp / "state"),
                *extra,
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            text=True,
        )


def stop_agent(agent: subprocess.Popen[str], seconds: float = 5) -> None:
    """SIGTERM, then SIGKILL when it has not ended within ``seconds``."""
    agent.terminate()
    try:
        agent.wait(seconds)
    except subprocess.TimeoutExpired:
        agent.kill()
        agent.wait(5)


def wait_until(predicate: Callable[[], bool], timeout: float, step: float = 0.02) -> float | None:
    """Seconds until ``predicate`` held, or None after ``timeout``."""
    start = time.monotonic()
    while time.monotonic() - start < timeout:
        if predicate():
            return time.monotonic() - start
        time.sleep(step)
    return None
