"""Bans: who is banned, by which jail, for which services, why and until when.

Times are epoch seconds (floats) given by the caller: the domain never reads
a clock. The vocabulary follows CrowdSec's decisions: the *scope* is the set
of services a ban covers, the *jail* is the scenario that made it.
"""

from __future__ import annotations

from dataclasses import dataclass

from pbxfw.domain.addresses import IPNetwork
from pbxfw.domain.decision import ALL_SERVICES, ActiveBan

__all__ = ["Ban", "scope_from_text", "scope_text"]


def scope_text(scope: frozenset[str]) -> str:
    return ALL_SERVICES if ALL_SERVICES in scope else ",".join(sorted(scope))


def scope_from_text(text: str) -> frozenset[str]:
    return frozenset(part for part in text.split(",") if part)


@dataclass(frozen=True, slots=True)
class Ban:
    """A stored ban. ``expires_at`` is when the kernel element lapses too."""

    subnet: IPNetwork
    jail: str
    scope: frozenset[str]
    reason: str
    created_at: float
    expires_at: float
    first_failure: float = 0.0
    last_failure: float = 0.0
    failures: int = 0
    offence: int = 1
    id: int | None = None

    def remaining(self, now: float) -> int:
        """Whole seconds left (0 when expired); the kernel element's timeout."""
        return max(0, int(self.expires_at - now + 0.999))

    def active(self, now: float) -> bool:
        return self.expires_at > now

    def as_active(self) -> ActiveBan:
        return ActiveBan(self.subnet, self.jail, self.scope, self.reason)

    def address_text(self) -> str:
        """The address as an administrator writes it: no /32 or /128 for one host."""
        if self.subnet.prefixlen == self.subnet.max_prefixlen:
            return str(self.subnet.network_address)
        return str(self.subnet)

    def as_json(self, now: float) -> dict[str, object]:
        return {
            "address": self.address_text(),
            "jail": self.jail,
            "scope": sorted(self.scope),
            "reason": self.reason,
            "since": self.created_at,
            "until": self.expires_at,
            "remaining": self.remaining(now),
            "failures": self.failures,
            "offence": self.offence,
        }
