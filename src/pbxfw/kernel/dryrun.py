"""A backend that keeps the table in memory: for tests and ``--dry-run`` use.

It has the methods of NftBackend that the agent and the use cases call
(apply, structure, add_bans, remove_bans, list_table, delete_table) and
records every call, so a test can assert what would have reached the kernel.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from pbxfw.compiler import BanElement

__all__ = ["DryRunBackend"]


@dataclass
class DryRunBackend:
    netns: str | None = None
    table: str | None = None
    bans: dict[tuple[str, str], int | None] = field(default_factory=dict)
    calls: list[str] = field(default_factory=list)

    def apply(self, ruleset_text: str) -> None:
        self.calls.append("apply")
        self.table = ruleset_text

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

    def add_bans(
        self,
        bans: Sequence[BanElement],
        guard: Sequence[BanElement] | None = None,
        *,
        refresh: bool = True,
    ) -> None:
        self.calls.append(f"add_bans {len(bans)}")
        for ban in bans:
            self.bans[(str(ban.subnet), ban.jail)] = ban.expires_in_seconds

    def remove_bans(
        self, bans: Sequence[BanElement], unguard: Sequence[BanElement] | None = None
    ) -> None:
        self.calls.append(f"remove_bans {len(bans)}")
        for ban in bans:
            self.bans.pop((str(ban.subnet), ban.jail), None)
