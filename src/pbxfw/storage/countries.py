"""Country rules and the country database: rows ↔ domain objects (part of ``Repository``).

The rules belong to a site's configuration; until the site scoping of issue
16 lands, every read and write here is of the site ``default``
(:data:`SITE`: the one seam to replace by the repository's site).

The country database is kept in the database itself, one row, so every node
of a fleet reads the same ranges from the store it already reads (PostgreSQL)
and an import replaces it in one transaction. Its ranges are packed
(:func:`pack_table`): fixed-width integers per family, zlib-compressed.
"""

from __future__ import annotations

import json
import struct
import zlib
from array import array

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from pbxfw.domain.countries import CountryRule
from pbxfw.domain.geo import CountryRange, CountryTable, GeoInfo
from pbxfw.domain.network_model import Verdict
from pbxfw.errors import NotFoundError, StorageError
from pbxfw.storage.models import CountryRuleRow, GeoDatabaseRow

__all__ = ["SITE", "CountryRows", "pack_table", "unpack_table"]

#: The site whose configuration these rows are (issue 16 makes it a parameter).
SITE = "default"
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
    """:func:`pack_table` backwards; a damaged blob raises StorageError."""
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
        raise StorageError(
            f"the stored country database is damaged ({exc}); import it again"
        ) from None
    return CountryTable(families[4], families[6])


def _rule(row: CountryRuleRow) -> CountryRule:
    services = {k: Verdict(v) for k, v in json.loads(row.services).items()}
    return CountryRule(row.name, tuple(row.codes.split(",")), services, id=row.id)


def _fill(row: CountryRuleRow, rule: CountryRule) -> None:
    row.name = rule.name
    row.codes = ",".join(rule.codes)
    row.services = json.dumps({k: rule.services[k].value for k in sorted(rule.services)})


class CountryRows:
    """Reads and writes of country rules and the country database on ``self.session``."""

    session: Session

    # -- rules ------------------------------------------------------------
    def country_rules(self) -> list[CountryRule]:
        rows = self.session.scalars(
            select(CountryRuleRow).where(CountryRuleRow.site == SITE).order_by(CountryRuleRow.id)
        )
        return [_rule(r) for r in rows]

    def country_rule(self, ref: str | int) -> CountryRule:
        """A rule by id or by name."""
        for rule in self.country_rules():
            if str(rule.id) == str(ref) or rule.name == str(ref):
                return rule
        raise NotFoundError(f"no country rule {ref!r}; see `pbxfw country list`")

    def add_country_rule(self, rule: CountryRule) -> CountryRule:
        row = CountryRuleRow(site=SITE)
        _fill(row, rule)
        if rule.id is not None:
            row.id = rule.id
        self.session.add(row)
        self.session.flush()
        return rule.with_changes(id=row.id)

    def update_country_rule(self, rule: CountryRule) -> None:
        row = self.session.get(CountryRuleRow, rule.id)
        if row is None or row.site != SITE:
            raise NotFoundError(f"no country rule {rule.id!r}; see `pbxfw country list`")
        _fill(row, rule)
        self.session.flush()

    def remove_country_rule(self, rule_id: int) -> None:
        self.session.execute(
            delete(CountryRuleRow).where(CountryRuleRow.id == rule_id, CountryRuleRow.site == SITE)
        )

    def clear_country_rules(self) -> None:
        self.session.execute(delete(CountryRuleRow).where(CountryRuleRow.site == SITE))

    # -- the country database -------------------------------------------------
    def geo_info(self) -> GeoInfo | None:
        row = self.session.execute(
            select(
                GeoDatabaseRow.source,
                GeoDatabaseRow.built,
                GeoDatabaseRow.loaded_at,
                GeoDatabaseRow.ipv4_ranges,
                GeoDatabaseRow.ipv6_ranges,
            ).where(GeoDatabaseRow.id == 1)
        ).first()
        return None if row is None else GeoInfo(*row)

    def geo_table(self) -> CountryTable | None:
        data = self.session.scalar(select(GeoDatabaseRow.data).where(GeoDatabaseRow.id == 1))
        return None if data is None else unpack_table(data)

    def set_geo(self, table: CountryTable, info: GeoInfo) -> None:
        """Replace the country database (inside the caller's one transaction)."""
        self.session.execute(delete(GeoDatabaseRow))
        self.session.add(
            GeoDatabaseRow(
                id=1,
                source=info.source[:255],
                built=info.built,
                loaded_at=info.loaded_at,
                ipv4_ranges=table.count(4),
                ipv6_ranges=table.count(6),
                data=pack_table(table),
            )
        )
        self.session.flush()
