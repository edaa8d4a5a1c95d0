"""A feed's list: parsing the three formats, refusing entries, the shrink hold-back.

An entry is a CIDR block as ``(version, first, prefix)`` (``first`` the
network address as an integer, host bits zero). Parsing is per line and
never raises: what cannot be read is counted as ``malformed``. Refusals
(``refuse``) count by reason; ``held_back`` says when a new list shrinks
so much that it must not replace the last good one. Pure: no I/O, no clock;
the hot loop uses ``socket.inet_pton`` only as a converter (1,000,000 lines
are parsed in about a second).
"""

from __future__ import annotations

import ipaddress
import json
import re
import socket
from bisect import bisect_left, bisect_right
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from pbxfw.domain.addresses import IPAddress, IPNetwork
from pbxfw.domain.configuration import Configuration

__all__ = [
    "APIBAN_DONE",
    "MIN_PREFIX",
    "SHRINK_LIMIT",
    "Entry",
    "FeedList",
    "Protected",
    "entry_text",
    "held_back",
    "parse_apiban_page",
    "parse_entry",
    "parse_json_list",
    "parse_plain",
    "protected_for",
    "read_list_text",
    "refuse",
]

#: ``(version, first, prefix)``: a CIDR block, host bits zero.
Entry = tuple[int, int, int]
#: Broader than this is refused: ``0.0.0.0/0`` in a list must never drop everyone.
MIN_PREFIX = {4: 8, 6: 16}
#: A new list with fewer than this share of the last good one's entries is held back.
SHRINK_LIMIT = 0.10
#: APIBAN's marker of the last page (its clients stop at ``"ID": "none"``).
APIBAN_DONE = "none"

_BITS = {4: 32, 6: 128}
_MALFORMED = "malformed"


@dataclass(slots=True)
class FeedList:
    """A list's entries and what was refused, by reason.

    Single addresses are kept as sorted integers per family (``hosts[4]``,
    ``hosts[6]``): a million of them as tuples would cost seconds to make
    and sort. ``nets`` are the CIDR blocks (sorted entries).
    """

    hosts: dict[int, list[int]] = field(default_factory=lambda: {4: [], 6: []})
    nets: list[Entry] = field(default_factory=list)
    refused: Counter[str] = field(default_factory=Counter)

    @classmethod
    def of(cls, entries: Iterable[Entry]) -> FeedList:
        """A list from entries (any order, repeats allowed)."""
        out = cls()
        nets: set[Entry] = set()
        for entry in entries:
            version, value, prefix = entry
            if prefix == _BITS[version]:
                out.hosts[version].append(value)
            else:
                nets.add(entry)
        out.hosts = {v: sorted(set(h)) for v, h in out.hosts.items()}
        out.nets = sorted(nets)
        return out

    @property
    def entries(self) -> list[Entry]:
        """Every entry as ``(version, first, prefix)``, sorted (for small lists:
        tests, ``bans list --origin``)."""
        out = [(v, h, _BITS[v]) for v in (4, 6) for h in self.hosts[v]]
        out += self.nets
        out.sort()
        return out

    def count(self) -> int:
        return len(self.hosts[4]) + len(self.hosts[6]) + len(self.nets)


def parse_entry(text: str) -> Entry | None:
    """One address or CIDR → an entry; None when malformed or host bits are set
    (a list that says ``192.0.2.7/24`` is broken: blocking the /24 would over-block)."""
    address, sep, prefix_text = text.partition("/")
    if ":" in address:
        version, family = 6, socket.AF_INET6
    else:
        version, family = 4, socket.AF_INET
    try:
        value = int.from_bytes(socket.inet_pton(family, address), "big")
    except (OSError, ValueError):  # ValueError: an embedded NUL
        return None
    bits = _BITS[version]
    if sep:
        if not prefix_text.isdigit() or len(prefix_text) > 3:
            return None
        prefix = int(prefix_text)
        if prefix > bits:
            return None
    else:
        prefix = bits
    if value & ((1 << (bits - prefix)) - 1):
        return None
    return (version, value, prefix)


def _collect(tokens: Iterable[str], out: FeedList) -> FeedList:
    """Parse address tokens into ``out``; sorts and removes repeats."""
    pton, inet, from_bytes = socket.inet_pton, socket.AF_INET, int.from_bytes
    hosts4: list[int] = []
    rest: list[str] = []
    # The common case first, at C speed: a plain IPv4 address.
    for token in tokens:
        try:
            hosts4.append(from_bytes(pton(inet, token), "big"))
        except (OSError, ValueError):
            rest.append(token)
    hosts6: list[int] = []
    nets: set[Entry] = set()
    malformed = 0
    for token in rest:
        entry = parse_entry(token)
        if entry is None:
            malformed += 1
        elif entry[2] == _BITS[entry[0]]:
            (hosts4 if entry[0] == 4 else hosts6).append(entry[1])
        else:
            nets.add(entry)
    if malformed:
        out.refused[_MALFORMED] += malformed
    out.hosts = {4: sorted(set(hosts4)), 6: sorted(set(hosts6))}
    out.nets = sorted(nets)
    return out


# The first word of a line, before any "#" or ";" comment (Spamhaus DROP's
# "1.2.3.0/24 ; SBL123", FireHOL's "# ...", DShield's second column). Lines
# end at "\n" only: str.splitlines() would also cut at \x1c-\x1e, \x85 or
# \u2028, which no list means as a line end.
_FIRST_WORD = re.compile(r"^[ \t\r\f\v]*([^\s#;]+)", re.M)


def parse_plain(text: str) -> FeedList:
    """One address or CIDR a line; ``#`` and ``;`` start comments (whole-line or
    trailing: Spamhaus DROP's ``1.2.3.0/24 ; SBL123``, FireHOL's ``# ...``)."""
    return _collect(_FIRST_WORD.findall(text), FeedList())


def parse_json_list(text: str) -> FeedList:
    """A JSON list of address/CIDR strings. Not a list of strings: ValueError."""
    data = json.loads(text)
    if not isinstance(data, list):
        raise ValueError("not a JSON list of addresses")
    out = FeedList()
    strings = [item.strip() for item in data if isinstance(item, str)]
    if len(data) > len(strings):
        out.refused[_MALFORMED] += len(data) - len(strings)
    return _collect(strings, out)


def parse_apiban_page(text: str) -> tuple[list[str], str]:
    """One APIBAN page ``{"ipaddress": [...], "ID": "..."}`` → (addresses, next ID).

    The next ID is ``"none"`` on the last page (whose ``ipaddress`` is
    ``["no new bans"]``: not addresses). ValueError for anything else.
    """
    data = json.loads(text)
    if not isinstance(data, dict) or "ID" not in data:
        raise ValueError('not an APIBAN page (no "ID")')
    next_id = str(data["ID"])
    if next_id == APIBAN_DONE:
        return [], next_id
    if next_id in {"", "unauthorized"}:
        raise ValueError(f"APIBAN answered ID {next_id!r} (check the key)")
    addresses = data.get("ipaddress")
    if not isinstance(addresses, list):
        raise ValueError('APIBAN page without an "ipaddress" list')
    return [a.strip() for a in addresses if isinstance(a, str)], next_id


def read_list_text(addresses: Sequence[str]) -> FeedList:
    """Entries from already split address texts (APIBAN's pages)."""
    return _collect(addresses, FeedList())


def entry_text(entry: Entry) -> str:
    """An entry as CIDR text (a single address without ``/32``/``/128``)."""
    version, value, prefix = entry
    if version == 4:
        address = socket.inet_ntop(socket.AF_INET, value.to_bytes(4, "big"))
    else:
        address = socket.inet_ntop(socket.AF_INET6, value.to_bytes(16, "big"))
    return address if prefix == _BITS[version] else f"{address}/{prefix}"


class Protected:
    """Address ranges no feed may block, each with the reason shown when one is refused.

    Built once per list from (first, last, reason) per family; an entry that
    overlaps one (inside it, or holding it) is refused: dropping the entry
    whole is the only way to never block the protected addresses.
    """

    def __init__(self, ranges: Iterable[tuple[int, int, int, str]]) -> None:
        by_version: dict[int, list[tuple[int, int, str]]] = {4: [], 6: []}
        for version, first, last, reason in ranges:
            by_version[version].append((first, last, reason))
        self._spans: dict[int, list[tuple[int, int, str]]] = {}
        self._starts: dict[int, list[int]] = {}
        self._reach: dict[int, list[int]] = {}
        for version, spans in by_version.items():
            spans.sort()
            self._spans[version] = spans
            self._starts[version] = [s[0] for s in spans]
            # The furthest end among spans[:i+1]: overlaps found with one bisect.
            reach: list[int] = []
            top = -1
            for _, last, _ in spans:
                top = max(top, last)
                reach.append(top)
            self._reach[version] = reach

    def spans(self, version: int) -> list[tuple[int, int, str]]:
        """The protected ranges of one family: (first, last, reason)."""
        return list(self._spans[version])

    def reason(self, version: int, first: int, last: int) -> str | None:
        """The reason of a protected range overlapping first..last, or None."""
        starts = self._starts[version]
        i = bisect_right(starts, last) - 1
        if i < 0 or self._reach[version][i] < first:
            return None
        spans = self._spans[version]
        while i >= 0 and self._reach[version][i] >= first:
            span_first, span_last, why = spans[i]
            if span_last >= first and span_first <= last:
                return why
            i -= 1
        return None


def protected_for(config: Configuration, own: Iterable[IPAddress] = ()) -> Protected:
    """What no feed of ``config`` may block, on a host with the addresses ``own``.

    Reasons (the keys of the refused counts): ``loopback``, ``never-block``,
    ``whitelist`` (``ips_whitelist``), ``own address``, ``local network``
    (private space the PBX has as a local network).
    """
    ranges: list[tuple[int, int, int, str]] = [
        (4, 0x7F000000, 0x7FFFFFFF, "loopback"),
        (6, 1, 1, "loopback"),
    ]

    spans: list[tuple[IPNetwork, str]] = [
        (n.subnet, "never-block") for n in config.networks if n.never_block
    ]
    spans += [(ipaddress.ip_network(w), "whitelist") for w in config.settings.ips_whitelist]
    spans += [
        (n.subnet, "local network")
        for n in config.networks
        if n.local and n.subnet.is_private and n.subnet.prefixlen > 0
    ]
    for subnet, why in spans:
        first = int(subnet.network_address)
        ranges.append((subnet.version, first, int(subnet.broadcast_address), why))
    for address in own:
        ranges.append((address.version, int(address), int(address), "own address"))
    return Protected(ranges)


def refuse(parsed: FeedList, protected: Protected) -> FeedList:
    """Keep the entries a feed may block; count the others by reason.

    Kept entries are sorted and disjoint (a block inside a kept one is
    dropped: it adds nothing). Refused: broader than /8 (IPv4) or /16 (IPv6) (``too broad``), and
    overlapping a protected range (loopback, never-block networks, the
    whitelist, the host's own addresses, the PBX's local networks where
    private: the reasons ``Protected`` carries).
    """
    refused = Counter(parsed.refused)
    nets: list[Entry] = []
    end = {4: -1, 6: -1}
    # Sorted: a block comes before the blocks inside it, which add nothing
    # (and would overlap in the kernel's interval set).
    for entry in parsed.nets:
        version, first, prefix = entry
        if prefix < MIN_PREFIX[version]:
            refused["too broad"] += 1
            continue
        last = first | ((1 << (_BITS[version] - prefix)) - 1)
        why = protected.reason(version, first, last)
        if why is not None:
            refused[why] += 1
            continue
        if first <= end[version]:
            continue
        end[version] = last
        nets.append(entry)
    hosts: dict[int, list[int]] = {}
    for version in (4, 6):
        # Addresses: cut out the protected spans (counted) and the kept
        # blocks (covered: not counted), one bisect per span, not per address.
        bits = _BITS[version]
        spans: list[tuple[int, int, str | None]] = list(protected.spans(version))
        spans += [
            (first, first | ((1 << (bits - prefix)) - 1), None)
            for v, first, prefix in nets
            if v == version
        ]
        hosts[version] = _cut(parsed.hosts[version], spans, refused)
    return FeedList(hosts, nets, refused)


def _cut(
    hosts: list[int], spans: Iterable[tuple[int, int, str | None]], refused: Counter[str]
) -> list[int]:
    """``hosts`` (sorted) without those in ``spans``; each cut one counted
    under its span's reason (None: not counted)."""
    cuts = []
    for first, last, why in spans:
        lo, hi = bisect_left(hosts, first), bisect_right(hosts, last)
        if lo < hi:
            cuts.append((lo, hi, why))
    if not cuts:
        return hosts
    cuts.sort(key=lambda c: (c[0], c[2] is None))
    pieces: list[list[int]] = []
    pos = 0
    for lo, hi, why in cuts:
        lo = max(lo, pos)
        if lo >= hi:
            continue
        pieces.append(hosts[pos:lo])
        if why is not None:
            refused[why] += hi - lo
        pos = hi
    pieces.append(hosts[pos:])
    return [h for piece in pieces for h in piece]


def held_back(previous: int, new: int) -> bool:
    """True when a list of ``new`` entries must not replace one of ``previous``:
    it shrank by more than 90 % at once (a broken upstream, an empty answer)."""
    return previous > 0 and new < previous * SHRINK_LIMIT
