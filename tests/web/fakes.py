"""A FakeApplier: the Applier protocol without a kernel, with a clock of its own.

It behaves like the real one as seen from the web layer: ``apply`` with a
confirmation window leaves a change pending until ``confirm`` or the
deadline, after which ``pending()`` reports nothing and the change counts as
rolled back (the watchdog's job in the real one). ``lockout`` names an
address whose apply is refused with LockoutError (the anti-lockout rule).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

from pbxfw.errors import LockoutError, NotFoundError

__all__ = ["FakeApplier"]


class FakeApplier:
    def __init__(self, clock: Callable[[], float] = time.time, preview: str = "") -> None:
        self.clock = clock
        self.text = preview or "table inet pbxfw {\n  # fake ruleset\n}\n"
        self.lockout: str | None = None
        self.calls: list[tuple[str, Any]] = []
        self.confirmed = 0
        self.rolled_back = 0
        self._deadline: float | None = None
        self._lock = threading.Lock()

    def _expire(self) -> None:
        if self._deadline is not None and self.clock() >= self._deadline:
            self._deadline = None
            self.rolled_back += 1

    @property
    def deadline(self) -> float | None:
        """When the pending change rolls back by itself (None: nothing pending)."""
        return self._deadline

    def preview(self) -> str:
        return self.text

    def apply(self, confirm_seconds: int | None, admin_address: str | None) -> dict[str, Any]:
        with self._lock:
            self.calls.append(("apply", (confirm_seconds, admin_address)))
            if self.lockout is not None and admin_address == self.lockout:
                raise LockoutError(
                    f"the new rules would block your own address {admin_address} for web; "
                    "allow web for a network containing it first"
                )
            if confirm_seconds:
                self._deadline = self.clock() + confirm_seconds
                return {"status": "pending", "deadline": self._deadline}
            return {"status": "applied", "deadline": None}

    def confirm(self) -> dict[str, Any]:
        with self._lock:
            self._expire()
            if self._deadline is None:
                raise NotFoundError("no change is waiting for confirmation")
            self._deadline = None
            self.confirmed += 1
            return {"status": "confirmed"}

    def rollback(self) -> dict[str, Any]:
        with self._lock:
            self._expire()
            if self._deadline is None:
                raise NotFoundError("no change is waiting for confirmation")
            self._deadline = None
            self.rolled_back += 1
            return {"status": "rolled_back"}

    def pending(self) -> dict[str, Any] | None:
        with self._lock:
            self._expire()
            if self._deadline is None:
                return None
            return {"status": "pending", "deadline": self._deadline}
