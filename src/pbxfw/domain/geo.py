"""The country database as the decision and the compiler read it (issue 17).

``CountryTable`` holds, per address family, sorted disjoint ranges of
addresses (as integers) with the ISO code of their country; an address in no
range is in no country (``unknown``). A lookup is one ``bisect``. ``GeoInfo``
says where the table came from. Building the table from a file, and keeping
it, are the use cases' and storage's (pure here: no I/O, no clock).
"""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass

from pbxfw.domain.addresses import IPAddress
from pbxfw.domain.countries import CountryRule, rule_for

__all__ = ["CountryRange", "CountryTable", "GeoInfo", "RuleRun", "rule_runs"]

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


def rule_runs(
    table: CountryTable | None, rules: Sequence[CountryRule], version: int
) -> list[RuleRun]:
    """The whole address space of a family cut into runs, each decided by one
    rule (or none): named countries, ``*``, ``unknown`` for the gaps. Touching
    runs of one rule are joined, so two rules over the whole database give a
    few thousand runs, not a million."""
    by_code: dict[str, CountryRule | None] = {}
    unknown = rule_for(None, rules)
    runs: list[RuleRun] = []

    def add(first: int, last: int, rule: CountryRule | None) -> None:
        if runs and runs[-1][2] is rule and runs[-1][1] + 1 == first:
            runs[-1] = (runs[-1][0], last, rule)
        else:
            runs.append((first, last, rule))

    pos = 0
    for first, last, code in table.ranges(version) if table is not None else ():
        if pos < first:
            add(pos, first - 1, unknown)
        if code not in by_code:
            by_code[code] = rule_for(code, rules)
        add(first, last, by_code[code])
        pos = last + 1
    end = (1 << _BITS[version]) - 1
    if pos <= end:
        add(pos, end, unknown)
    return runs
