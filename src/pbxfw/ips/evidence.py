"""The agent's memory of recent failure lines, handed over when a ban is made.

Pure and bounded (docs/observability.md, "Evidence"). For each (jail, host)
with counted failures it keeps a ring of the last ``size`` failures (at most
``MAX_LINES``), each as ``(file, line, text, time, event)`` with the text
cut to ``MAX_LINE_CHARS``; ``take`` removes a host's ring when its ban is
made and returns the evidence. Two bounds hold whatever an attacker writes:
at most ``max_hosts`` rings and ``max_chars`` characters of text in all;
past either, the rings of the hosts that first failed longest ago are
dropped, an eighth at a time (their ban, if it comes, says how many lines
were ``lost``). Per failure it costs one dict lookup and one ring append;
nothing is stored until a ban is made.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable
from itertools import islice

from pbxfw.domain.addresses import IPAddress
from pbxfw.domain.evidence import MAX_LINE_CHARS, MAX_LINES, BanEvidence, EvidenceLine, cut_line
from pbxfw.domain.jails import RECIDIVE_JAIL
from pbxfw.ips.detector_params import RECIDIVE_FINDTIME, RECIDIVE_MAXRETRY, DetectorParams
from pbxfw.ips.detector_state import host_key
from pbxfw.ips.events import BanDecision

__all__ = ["DEFAULT_MAX_CHARS", "DEFAULT_MAX_HOSTS", "EvidenceRing"]

#: Rings kept at most (the least recently active host's goes first).
DEFAULT_MAX_HOSTS = 50_000
#: Characters of line text kept at most in all rings (~16 MB of text).
DEFAULT_MAX_CHARS = 16_000_000

_Item = tuple[str, int, str, float, str]


class EvidenceRing:
    """Per (jail, host): the last ``size`` failure lines; see the module doc."""

    __slots__ = ("_chars", "_jails", "_rings", "max_chars", "max_hosts", "size")

    def __init__(
        self,
        size: int,
        *,
        max_hosts: int = DEFAULT_MAX_HOSTS,
        max_chars: int = DEFAULT_MAX_CHARS,
    ) -> None:
        self.size = max(1, min(size, MAX_LINES))
        self.max_hosts = max_hosts
        self.max_chars = max_chars
        # (host_key | jail index) → ring; in the order the hosts first failed
        # (an int key, as the detector's: hashing an address object is slow).
        self._rings: dict[int, deque[_Item]] = {}
        self._jails: dict[str, int] = {}
        self._chars = 0

    def __len__(self) -> int:
        return len(self._rings)

    @property
    def chars(self) -> int:
        """Characters of line text held."""
        return self._chars

    def _key(self, jail: str, host: IPAddress) -> int:
        j = self._jails.get(jail)
        if j is None:
            j = self._jails[jail] = len(self._jails)
        return host_key(host) | j

    def add(
        self, jail: str, host: IPAddress, file: str, line: int, text: str, time: float, event: str
    ) -> None:
        """Remember one counted failure of ``host`` in ``jail``."""
        if len(text) > MAX_LINE_CHARS or "\n" in text or text.endswith("\r"):
            text = cut_line(text)
        key = self._key(jail, host)
        rings = self._rings
        ring = rings.get(key)
        if ring is None:
            ring = rings[key] = deque(maxlen=self.size)
        elif len(ring) == self.size:
            self._chars -= len(ring[0][2])
        ring.append((file, line, text, time, event))
        self._chars += len(text)
        if self._chars > self.max_chars or len(rings) > self.max_hosts:
            self._evict()

    def take(
        self, jail: str, host: IPAddress, maxretry: int, findtime: int, failures: int
    ) -> BanEvidence:
        """The evidence of the ban of ``host`` in ``jail`` just made (its ring
        is forgotten): the lines kept, oldest first; ``failures`` is what the
        ban counted (lines missing from it are ``lost``)."""
        ring = self._rings.pop(self._key(jail, host), None)
        items = list(ring) if ring is not None else []
        self._chars -= sum(len(item[2]) for item in items)
        lines = tuple(EvidenceLine(f, n, text, t, ev) for f, n, text, t, ev in items)
        wanted = min(failures, self.size)
        return BanEvidence(jail, maxretry, findtime, lines, max(0, wanted - len(lines)))

    def take_for(
        self, made: Iterable[BanDecision], params: DetectorParams
    ) -> dict[tuple[IPAddress, str], BanEvidence]:
        """The evidence of the bans one failure just decided, by (host, jail):
        a jail's ban takes its ring; a recidive ban shows the lines of the
        jail ban that triggered it, with the recidive rule."""
        found: dict[tuple[IPAddress, str], BanEvidence] = {}
        lines: tuple[EvidenceLine, ...] = ()
        for d in made:
            if d.jail == RECIDIVE_JAIL:
                evidence = BanEvidence(RECIDIVE_JAIL, RECIDIVE_MAXRETRY, RECIDIVE_FINDTIME, lines)
            else:
                evidence = self.take(d.jail, d.host, params.maxretry, params.findtime, d.failures)
                lines = evidence.lines
            found[(d.host, d.jail)] = evidence
        return found

    def forget(self, host: IPAddress, jail: str | None = None) -> None:
        """Drop ``host``'s rings (in ``jail``, or every jail): a lifted ban, a new whitelist."""
        jails = list(self._jails) if jail is None else [jail]
        for name in jails:
            ring = self._rings.pop(self._key(name, host), None)
            if ring is not None:
                self._chars -= sum(len(item[2]) for item in ring)

    def _evict(self) -> None:
        """Drop the oldest rings, an eighth at a time (one pass over the dict
        per batch, not one per failure), until both bounds hold."""
        rings = self._rings
        while rings and (self._chars > self.max_chars or len(rings) > self.max_hosts):
            batch = max(1, len(rings) // 8)
            for key in list(islice(rings, batch)):
                self._chars -= sum(len(item[2]) for item in rings.pop(key))
