"""Small helpers shared by tests."""

from __future__ import annotations

import signal
import sqlite3
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

__all__ = ["Cli", "CliResult", "dump_database", "restoring_signals", "wait_for"]


@dataclass
class CliResult:
    exit_code: int
    stdout: str
    stderr: str


class Cli(Protocol):
    """The ``cli`` fixture: run ``pbxfw ARGS`` in-process, ``cli("network", "list")``."""

    def __call__(self, *args: str, input: str | None = None) -> CliResult: ...


def dump_database(path: Path) -> str:
    """Every table's rows as SQL text: equal dumps mean equal stored state."""
    connection = sqlite3.connect(path)
    try:
        return "\n".join(connection.iterdump())
    finally:
        connection.close()


def wait_for(condition: Callable[[], bool], seconds: float) -> bool:
    """Poll ``condition`` every 0.1 s for at most ``seconds``; its last answer."""
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        if condition():
            return True
        time.sleep(0.1)
    return condition()


def restoring_signals(run: Callable[[], None]) -> None:
    """``run()`` (e.g. ``Agent.run``, which installs its SIGTERM/SIGINT handlers),
    with the test process's own handlers put back afterwards."""
    handlers = {sig: signal.getsignal(sig) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        run()
    finally:
        for sig, handler in handlers.items():
            signal.signal(sig, handler)
