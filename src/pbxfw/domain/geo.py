"""The country database as the decision and the compiler read it (issue 17).

``CountryTable`` holds, per address family, sorted disjoint ranges of
addresses (as integers) with the ISO code of their country; an address in no
range is in no country (``unknown``). A lookup is one ``bisect``. ``GeoInfo``
says where the table came from. Building the table from a file, and keeping
it, are the use cases' and storage's (pure here: no I/O, no clock);
``pack_table``/``unpack_table`` convert a table to bytes and back (the
stored form, and the agent's kept copy).
"""

from __future__ import annotations

import struct
import zlib
from array import array
from bisect import bisect_right
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass

from pbxfw.domain.addresses import IPAddress
from pbxfw.domain.countries import CountryRule, rule_for

__all__ = [
    "CountryRange",
    "CountryTable",
    "GeoInfo",
    "RuleRun",
    "pack_table",
    "rule_runs",
    "unpack_table",
    "verdict_signature",
]

#: (first, last, code): addresses ``first``–``last`` are in country ``code``.
CountryRange = tuple[int, int, str]
#: (first, last, rule): addresses ``first``–``last`` are decided by ``rule``.
RuleRun = tuple[int, int, CountryRule | None]

_BITS = {4: 32, 6: 128}


@dataclass(frozen=True, slots=True)
class GeoInfo:
    """Where a country table came from: the source's name, its date
    (``YYYY-MM-DD``, the data's own build date when the file says it) and
    when it was loaded here (epoch seconds)."""

    source: str
    built: str
    loaded_at: float
    ipv4_ranges: int = 0
    ipv6_ranges: int = 0


def _flatten(ranges: Iterable[CountryRange], bits: int) -> list[CountryRange]:
    """Sorted, disjoint ranges; where two overlap the narrower one wins (a
    ``CIDR,CC`` file may list a block and a part of it), and touching
    ranges of one country are joined."""
    spans = sorted(ranges, key=lambda t: (t[0], -t[1]))
    out: list[CountryRange] = []
    stack: list[tuple[int, str]] = []
    pos = 0

    def emit(first: int, last: int, code: str) -> None:
        if first > last:
            return
        if out and out[-1][2] == code and out[-1][1] + 1 == first:
            out[-1] = (out[-1][0], last, code)
        else:
            out.append((first, last, code))

    def close_until(limit: int) -> None:
        nonlocal pos
        while stack and stack[-1][0] < limit:
            end, code = stack.pop()
            if pos <= end:
                emit(pos, end, code)
                pos = end + 1

    for first, last, code in spans:
        close_until(first)
        if stack and pos < first:
            emit(pos, first - 1, stack[-1][1])
        pos = max(pos, first)
        stack.append((last, code))
    close_until(1 << bits)
    return out


class CountryTable:
    """Address → country over both families; built once, read many times."""

    __slots__ = ("_codes", "_ends", "_starts")

    def __init__(self, v4: Iterable[CountryRange], v6: Iterable[CountryRange]) -> None:
        self._starts: dict[int, list[int]] = {}
        self._ends: dict[int, list[int]] = {}
        self._codes: dict[int, list[str]] = {}
        for version, ranges in ((4, v4), (6, v6)):
            flat = _flatten(ranges, _BITS[version])
            self._starts[version] = [r[0] for r in flat]
            self._ends[version] = [r[1] for r in flat]
            self._codes[version] = [r[2] for r in flat]

    @classmethod
    def flat(cls, v4: list[CountryRange], v6: list[CountryRange]) -> CountryTable:
        """A table of ranges already sorted, disjoint and joined (what
        :func:`unpack_table` reads back): no second sweep over a million ranges."""
        table = cls((), ())
        for version, ranges in ((4, v4), (6, v6)):
            table._starts[version] = [r[0] for r in ranges]
            table._ends[version] = [r[1] for r in ranges]
            table._codes[version] = [r[2] for r in ranges]
        return table

    def count(self, version: int) -> int:
        return len(self._starts[version])

    def ranges(self, version: int) -> Iterator[CountryRange]:
        return zip(self._starts[version], self._ends[version], self._codes[version], strict=True)

    def codes(self) -> frozenset[str]:
        return frozenset(self._codes[4]) | frozenset(self._codes[6])

    def find(self, address: IPAddress) -> CountryRange | None:
        """The range holding ``address`` and its country, or None (no country)."""
        version = address.version
        value = int(address)
        i = bisect_right(self._starts[version], value) - 1
        if i >= 0 and value <= self._ends[version][i]:
            return self._starts[version][i], self._ends[version][i], self._codes[version][i]
        return None

    def code(self, address: IPAddress) -> str | None:
        found = self.find(address)
        return None if found is None else found[2]


def verdict_signature(rule: CountryRule | None) -> tuple[tuple[str, str], ...]:
    """What a rule does to the verdicts: rules with the same signature
    (and no rule, and a rule naming no service) decide alike."""
    if rule is None:
        return ()
    return tuple(sorted((k, str(v)) for k, v in rule.services.items()))


def rule_runs(
    table: CountryTable | None, rules: Sequence[CountryRule], version: int
) -> list[RuleRun]:
    """The whole address space of a family cut into runs, each decided by one
    rule (or none): named countries, ``*``, ``unknown`` for the gaps. Touching
    runs whose rules give the same verdicts are joined (the run keeps one of
    them), so two rules over the whole database give a few thousand runs, not
    a million; ``check`` finds an address's own rule from its country."""
    # One representative rule per signature: "the same rule" below is "the
    # same verdicts".
    first_of: dict[tuple[tuple[str, str], ...], CountryRule | None] = {}

    def canonical(rule: CountryRule | None) -> CountryRule | None:
        return first_of.setdefault(verdict_signature(rule), rule)

    unknown = canonical(rule_for(None, rules))
    end = (1 << _BITS[version]) - 1
    if table is None:
        return [(0, end, unknown)]
    codes = table._codes[version]
    by_code = {code: canonical(rule_for(code, rules)) for code in sorted(set(codes))}
    runs: list[RuleRun] = []
    append = runs.append
    # The run being built: from ``current_first``, decided by ``current``.
    current_first, current = 0, unknown
    pos = 0
    for first, last, rule in zip(
        table._starts[version], table._ends[version], map(by_code.__getitem__, codes), strict=True
    ):
        if first > pos and current is not unknown:  # a gap: no country
            append((current_first, pos - 1, current))
            current_first, current = pos, unknown
        if rule is not current:
            if first > current_first:
                append((current_first, first - 1, current))
            current_first, current = first, rule
        pos = last + 1
    if pos <= end and current is not unknown:
        append((current_first, pos - 1, current))
        current_first, current = pos, unknown
    append((current_first, end, current))
    return runs


_MAGIC = b"pbxfw-geo 1\n"
#: array's items are in the machine's order; the blob's are big-endian.
_LITTLE = array("I", [1]).tobytes()[0] == 1


def pack_table(table: CountryTable) -> bytes:
    """The ranges of ``table`` as bytes: per family a count, the starts and ends
    (4 or 16 bytes each, big-endian) and an index into the code list."""
    codes = sorted(table.codes())
    index = {c: i for i, c in enumerate(codes)}
    out = [_MAGIC, struct.pack(">H", len(codes)), "".join(codes).encode("ascii")]
    for version, width in ((4, 4), (6, 16)):
        ranges = list(table.ranges(version))
        bounds = ([r[0] for r in ranges], [r[1] for r in ranges])
        out.append(struct.pack(">Q", len(ranges)))
        if width == 4:
            for column in bounds:
                values = array("I", column)
                if _LITTLE:
                    values.byteswap()
                out.append(values.tobytes())
        else:
            for column in bounds:
                out.append(b"".join(v.to_bytes(16, "big") for v in column))
        which = array("H", (index[r[2]] for r in ranges))
        if _LITTLE:
            which.byteswap()
        out.append(which.tobytes())
    return zlib.compress(b"".join(out), 6)


def unpack_table(data: bytes) -> CountryTable:
    """:func:`pack_table` backwards; a damaged blob raises ValueError."""
    try:
        raw = zlib.decompress(data)
        if not raw.startswith(_MAGIC):
            raise ValueError("not a pbxfw country table")
        at = len(_MAGIC)
        (ncodes,) = struct.unpack_from(">H", raw, at)
        at += 2
        text = raw[at : at + 2 * ncodes].decode("ascii")
        at += 2 * ncodes
        codes = [text[i : i + 2] for i in range(0, len(text), 2)]
        families: dict[int, list[CountryRange]] = {}
        for version, width in ((4, 4), (6, 16)):
            (count,) = struct.unpack_from(">Q", raw, at)
            at += 8
            columns: list[list[int]] = []
            for _ in (0, 1):
                chunk = raw[at : at + width * count]
                at += width * count
                if width == 4:
                    values = array("I")
                    values.frombytes(chunk)
                    if _LITTLE:
                        values.byteswap()
                    columns.append(values.tolist())
                else:
                    columns.append(
                        [int.from_bytes(chunk[i : i + 16], "big") for i in range(0, len(chunk), 16)]
                    )
            which = array("H")
            which.frombytes(raw[at : at + 2 * count])
            if _LITTLE:
                which.byteswap()
            at += 2 * count
            families[version] = [
                (a, b, codes[c]) for a, b, c in zip(columns[0], columns[1], which, strict=True)
            ]
    except (zlib.error, struct.error, ValueError, IndexError) as exc:
        raise ValueError(f"not a packed country table: {exc}") from None
    return CountryTable.flat(families[4], families[6])
