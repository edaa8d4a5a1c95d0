"""The kernel backend seam: what the agent and the use cases ask of the kernel.

``Backend`` is a protocol (checked by mypy, structurally): ``NftBackend``
(nftables and netlink, the real kernel) and ``DryRunBackend`` (in memory,
for tests and dry runs) implement it, and any fake a test writes can too.
It is cs-firewall-bouncer's backend, shaped for one table:

- **the ruleset**: ``apply`` loads a whole table in one transaction,
  ``check`` asks whether it would load, ``delete_table`` removes it;
- **ban-set changes**: ``add`` and ``delete`` only buffer; ``commit`` sends
  what is buffered as one kernel transaction per path (single addresses
  through netlink, subnets through ``nft -f``: see docs/nftables.md,
  "Kernel backend") and empties the buffer, whether it succeeded or not;
  ``discard`` empties it without sending;
- **read back**: ``list_table``, ``structure``, ``chains``;
- **metrics**: ``metrics()``, counters of what this backend sent.

Which elements to add and delete (the guard sets' arithmetic, the mirror of
what the kernel holds) is ``pbxfw.kernel.bansets.BanSets``'s job, not the
backend's: a backend sends what it is given.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from pbxfw.compiler.nft import BanElement

__all__ = ["Backend", "BackendMetrics"]


@dataclass(frozen=True, slots=True, kw_only=True)
class BackendMetrics:
    """What one backend has sent since it was made (no kernel read).

    ``elements_added`` / ``elements_deleted`` count set elements, jail and
    guard sets alike; ``last_commit_seconds`` is the wall time of the last
    commit that sent anything.
    """

    loads: int = 0
    commits: int = 0
    failed_commits: int = 0
    elements_added: int = 0
    elements_deleted: int = 0
    last_commit_seconds: float = 0.0


class Backend(Protocol):
    """The kernel side of pbxfw: the ``inet pbxfw`` table and its ban sets.

    Methods that change the kernel raise ``KernelError`` (nft's or the
    kernel's message, and the payload when there is one) and leave the
    running table as it was when the kernel refused.
    """

    @property
    def netns(self) -> str | None:
        """The network namespace this backend acts in (None: the current one)."""
        ...

    # -- the ruleset ---------------------------------------------------------
    def apply(self, ruleset_text: str) -> None:
        """Replace the table by ``ruleset_text`` (ban elements included) in
        one transaction. What is buffered stays buffered."""
        ...

    def check(self, ruleset_text: str) -> None:
        """Raise KernelError if ``apply(ruleset_text)`` would be refused; change nothing."""
        ...

    def delete_table(self) -> None:
        """Remove the table if present."""
        ...

    # -- ban-set changes, buffered ---------------------------------------------
    def add(
        self,
        bans: Sequence[BanElement],
        guard: Sequence[BanElement] | None = None,
        *,
        refresh: bool = True,
    ) -> None:
        """Buffer: put ``guard`` (None: the same elements as ``bans``) in the
        guard sets and ``bans`` in their jails' sets, each with its timeout.
        ``refresh`` renews the timeout of elements already present; without
        it the caller knows they are absent (a cheaper add)."""
        ...

    def delete(
        self, bans: Sequence[BanElement], unguard: Sequence[BanElement] | None = None
    ) -> None:
        """Buffer: remove ``bans`` from their jails' sets and ``unguard``
        (None: the same subnets) from the guard sets; absent ones are fine."""
        ...

    def commit(self) -> None:
        """Send what is buffered, in the order it was buffered, as one
        transaction per path; the buffer is empty afterwards, also when this
        raises. Nothing buffered: nothing sent."""
        ...

    def discard(self) -> None:
        """Empty the buffer without sending it."""
        ...

    # -- read back -------------------------------------------------------------
    def list_table(self, *, stateless: bool = False) -> str | None:
        """The running table (None: none); ``stateless`` without counters and expiry."""
        ...

    def structure(self) -> str | None:
        """The table without set elements, counters, expiry or flow tag: equal
        while nobody but pbxfw changes it. None: no table."""
        ...

    def chains(self) -> str | None:
        """The table's chain declarations, cheap whatever the sets hold. None: no table."""
        ...

    # -- metrics ---------------------------------------------------------------
    def metrics(self) -> BackendMetrics:
        """Counters of what this backend has sent."""
        ...
