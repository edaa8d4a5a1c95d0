"""The login throttle's rule: how failed logins turn into refusals and delays.

Pure: every function takes the time as an argument and returns new values;
storage keeps the records (table ``login_throttle``), the use case
(:class:`pbxfw.usecases.users.LoginThrottle`) applies the rule.

Two kinds of key, counted separately::

    address:ADDR   the client's address (an IPv6 client by its /64)   → REFUSES
    user:NAME      the account name tried, whoever tried it           → DELAYS

The rule (docs/security.md, "Who can log in, and how guessing is slowed"):

- A *run* of failures starts with a key's first failure; failures count in
  it while fewer than :data:`FREE_FAILURES` (5) came within
  :data:`WINDOW` (60 s) of its first one — otherwise a new run starts.
- Once a run holds 5 failures, the key stays in it until it has been quiet
  (no failure, no lock) for :data:`MEMORY` (1 h), so each further failure
  makes the next penalty longer.
- An **address** with ``n >= 5`` failures is locked for
  ``LOCK_BASE * 2 ** (n - 5)`` seconds (30 s, 1 min, 2 min, … at most
  :data:`LOCK_MAX`, 15 min), counted from its last failure. While locked,
  every attempt from it is refused (HTTP 429, ``Retry-After``) without the
  password being checked.
- An **account** is never locked, so a guesser cannot lock the real
  administrator out: an attempt on an account with ``n >= 5`` failures is
  only delayed, ``DELAY_BASE * 2 ** (n - 5)`` seconds (1 s, 2 s, … at most
  :data:`DELAY_MAX`, 8 s), before its password is checked — from any
  address, with the right password or not.
- A success resets its address's record and takes back the one failure the
  attempt had provisionally added to its account (see the use case).
"""

from __future__ import annotations

import ipaddress
import math
from dataclasses import dataclass, replace

__all__ = [
    "DELAY_BASE",
    "DELAY_MAX",
    "FREE_FAILURES",
    "LOCK_BASE",
    "LOCK_MAX",
    "MEMORY",
    "WINDOW",
    "ThrottleRecord",
    "account_delay",
    "address_key",
    "address_lock",
    "count_failure",
    "is_stale",
    "retry_after",
    "user_key",
]

#: Failures a key may have in one :data:`WINDOW` before penalties start.
FREE_FAILURES = 5
#: Seconds from a run's first failure within which the free failures count.
WINDOW = 60.0
#: A key past the threshold is forgotten after this many quiet seconds.
MEMORY = 3600.0
#: The first lock of an address, doubled by each further failure.
LOCK_BASE = 30.0
#: The longest lock of an address.
LOCK_MAX = 900.0
#: The first delay of an account's attempts, doubled by each further failure.
DELAY_BASE = 1.0
#: The longest delay of an account's attempts.
DELAY_MAX = 8.0
#: User names are cut to this length in keys (the column holds 300 characters).
_NAME_MAX = 128


@dataclass(frozen=True, slots=True)
class ThrottleRecord:
    """The failures of one key; times are epoch seconds, ``locked_until`` 0 when never."""

    key: str
    failures: int = 0
    first_failure: float = 0.0
    last_failure: float = 0.0
    locked_until: float = 0.0

    def locked(self, now: float) -> bool:
        return self.locked_until > now


def user_key(name: str) -> str:
    """``user:NAME`` (long names cut: the key counts attempts, it is not a copy)."""
    return "user:" + name[:_NAME_MAX]


def address_key(address: str) -> str:
    """``address:ADDR``; an IPv6 client counts by its /64, which one host usually holds whole.

    Anything that is not an IP address (a Unix socket, a test client) is
    kept as text: every such client shares that one key.
    """
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return "address:" + address[:_NAME_MAX]
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:  # ::ffff:192.0.2.1 is the IPv4 client 192.0.2.1
            return f"address:{ip.ipv4_mapped}"
        return "address:" + str(ipaddress.ip_network(f"{ip}/64", strict=False))
    return f"address:{ip}"


def is_stale(record: ThrottleRecord, now: float) -> bool:
    """True when the record no longer matters and may be forgotten."""
    if record.locked(now):
        return False
    if record.failures < FREE_FAILURES:
        return now - record.first_failure > WINDOW
    return now - max(record.last_failure, record.locked_until) > MEMORY


def count_failure(record: ThrottleRecord | None, key: str, now: float) -> ThrottleRecord:
    """``record`` with one more failure at ``now`` (a new run when the old one is over).

    Does not set a lock: :func:`address_lock` says how long, for addresses.
    """
    if record is None or is_stale(record, now):
        return ThrottleRecord(key, 1, now, now, 0.0)
    return replace(record, failures=record.failures + 1, last_failure=now)


def address_lock(failures: int) -> float:
    """Seconds an address with ``failures`` in its run is refused (0: not locked)."""
    if failures < FREE_FAILURES:
        return 0.0
    # min() before the power would overflow: 2 ** 2000 is fine as an int,
    # but as a float it is not.
    steps = min(failures - FREE_FAILURES, 32)
    return min(LOCK_BASE * 2.0**steps, LOCK_MAX)


def account_delay(failures: int) -> float:
    """Seconds an attempt on an account with ``failures`` in its run waits (0: none)."""
    if failures < FREE_FAILURES:
        return 0.0
    steps = min(failures - FREE_FAILURES, 32)
    return min(DELAY_BASE * 2.0**steps, DELAY_MAX)


def retry_after(record: ThrottleRecord, now: float) -> int:
    """Whole seconds until a locked key may try again (at least 1, for ``Retry-After``)."""
    return max(1, math.ceil(record.locked_until - now))
