"""The one event type that flows through intrusion prevention.

sources (log lines) → recognisers (``Failure``) → detector (``BanDecision``)
→ bans (storage + kernel sets). Times are the log's own timestamps, as
aware UTC datetimes, so the detector can be replayed without a clock.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from pbxfw.domain.addresses import IPAddress

# Re-exported for code written before the jails moved to the domain.
from pbxfw.domain.jails import JAIL_SCOPES

__all__ = ["JAIL_SCOPES", "BanDecision", "Failure"]


@dataclass(frozen=True, slots=True, init=False)
class Failure:
    """One recognised failure: who failed, when, against which jail, and what.

    ``host`` comes only from the field the PBX wrote for the remote party.
    ``key`` identifies the attempt across log files so one PJSIP failure
    written as a NOTICE and a SECURITY line counts once (empty: always count).
    ``count`` is how many failures the line stands for: rsyslog's ``message
    repeated N times: [ ... ]`` is N copies of one message, and the detector
    counts it as N.
    """

    time: datetime
    jail: str
    host: IPAddress
    event: str
    file: str = ""
    line: int = 0
    key: str = ""
    count: int = 1

    def __init__(
        self,
        time: datetime,
        jail: str,
        host: IPAddress,
        event: str,
        file: str = "",
        line: int = 0,
        key: str = "",
        count: int = 1,
    ) -> None:
        # The generated __init__ of a frozen dataclass, with object.__setattr__
        # looked up once: a big scan builds ~100,000 of these, and this is
        # about twice as fast.
        set_ = _setattr
        set_(self, "time", time)
        set_(self, "jail", jail)
        set_(self, "host", host)
        set_(self, "event", event)
        set_(self, "file", file)
        set_(self, "line", line)
        set_(self, "key", key)
        set_(self, "count", count)


_setattr = object.__setattr__


@dataclass(frozen=True, slots=True)
class BanDecision:
    """The detector's output: ban ``host`` for ``seconds`` from ``time``."""

    host: IPAddress
    jail: str
    scope: frozenset[str]
    time: datetime
    seconds: int
    failures: int
    first_failure: datetime
    reason: str
    offence: int = 1
