"""A backend that keeps the table in memory: for tests and ``--dry-run`` use.

It implements ``pbxfw.kernel.Backend`` like NftBackend, and records every
call, so a test can assert what would have reached the kernel. ``bans``
holds what the jails' sets would hold after the commits so far (the guard
sets are not modelled).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace

from pbxfw.compiler import BanElement
from pbxfw.kernel.backend import BackendMetrics

__all__ = ["DryRunBackend"]


@dataclass
class DryRunBackend:
    netns: str | None = None
    table: str | None = None
    #: (subnet, jail) → the element's timeout, as committed
    bans: dict[tuple[str, str], int | None] = field(default_factory=dict)
    calls: list[str] = field(default_factory=list)
    #: what ``add`` / ``delete`` buffered: (add?, elements)
    staged: list[tuple[bool, list[BanElement]]] = field(default_factory=list)
    counters: BackendMetrics = field(default_factory=BackendMetrics)

    def apply(self, ruleset_text: str) -> None:
        self.calls.append("apply")
        self.table = ruleset_text
        self.counters = replace(self.counters, loads=self.counters.loads + 1)

    def check(self, ruleset_text: str) -> None:
        self.calls.append("check")

    def structure(self) -> str | None:
        return self.table

    def chains(self) -> str | None:
        return None if self.table is None else "chains"

    def list_table(self, *, stateless: bool = False) -> str | None:
        return self.table

    def delete_table(self) -> None:
        self.calls.append("delete_table")
        self.table = None

    def add(
        self,
        bans: Sequence[BanElement],
        guard: Sequence[BanElement] | None = None,
        *,
        refresh: bool = True,
    ) -> None:
        self.calls.append(f"add {len(bans)}")
        self.staged.append((True, list(bans)))

    def delete(
        self, bans: Sequence[BanElement], unguard: Sequence[BanElement] | None = None
    ) -> None:
        self.calls.append(f"delete {len(bans)}")
        self.staged.append((False, list(bans)))

    def discard(self) -> None:
        self.staged = []

    def commit(self) -> None:
        staged, self.staged = self.staged, []
        if not staged:
            return
        self.calls.append("commit")
        added = deleted = 0
        for adding, bans in staged:
            for ban in bans:
                key = (str(ban.subnet), ban.jail)
                if adding:
                    self.bans[key] = ban.expires_in_seconds
                    added += 1
                else:
                    self.bans.pop(key, None)
                    deleted += 1
        c = self.counters
        self.counters = replace(
            c,
            commits=c.commits + 1,
            elements_added=c.elements_added + added,
            elements_deleted=c.elements_deleted + deleted,
        )

    def metrics(self) -> BackendMetrics:
        return self.counters
