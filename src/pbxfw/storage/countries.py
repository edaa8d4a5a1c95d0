"""Country rules and the country database: rows ↔ domain objects (part of ``Repository``).

The rules belong to a site's configuration: every read and write here is of
the repository's site (``self.site``, docs/fleet-sites.md).

The country database is kept in the database itself, one row, so every node
of a fleet reads the same ranges from the store it already reads (PostgreSQL)
and an import replaces it in one transaction. Its ranges are packed
(``pbxfw.domain.geo.pack_table``): fixed-width integers per family, compressed.
"""

from __future__ import annotations

import json

from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session

from pbxfw.domain.countries import CountryRule
from pbxfw.domain.geo import CountryTable, GeoInfo, pack_table, unpack_table
from pbxfw.domain.network_model import Verdict
from pbxfw.errors import NotFoundError, StorageError
from pbxfw.storage.models import CountryRuleRow, GeoDatabaseRow

__all__ = ["CountryRows"]


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
    site: str

    # -- rules ------------------------------------------------------------
    def country_rules(self) -> list[CountryRule]:
        rows = self.session.scalars(
            select(CountryRuleRow)
            .where(CountryRuleRow.site == self.site)
            .order_by(CountryRuleRow.id)
        )
        return [_rule(r) for r in rows]

    def country_rule(self, ref: str | int) -> CountryRule:
        """A rule by id or by name."""
        for rule in self.country_rules():
            if str(rule.id) == str(ref) or rule.name == str(ref):
                return rule
        raise NotFoundError(f"no country rule {ref!r}; see `pbxfw country list`")

    def add_country_rule(self, rule: CountryRule) -> CountryRule:
        row = CountryRuleRow(site=self.site)
        _fill(row, rule)
        # The next id by hand, not the database's sequence: an import keeps
        # the document's ids, which PostgreSQL's sequence never handed out.
        # Safe: every write holds the one writer's lock (db.py).
        # An id is unique in the whole database: a document's id that another
        # site's rule holds is replaced.
        if rule.id is not None and self.session.get(CountryRuleRow, rule.id) is None:
            row.id = rule.id
        else:
            row.id = (self.session.scalar(select(func.max(CountryRuleRow.id))) or 0) + 1
        self.session.add(row)
        self.session.flush()
        return rule.with_changes(id=row.id)

    def update_country_rule(self, rule: CountryRule) -> None:
        row = self.session.get(CountryRuleRow, rule.id)
        if row is None or row.site != self.site:
            raise NotFoundError(f"no country rule {rule.id!r}; see `pbxfw country list`")
        _fill(row, rule)
        self.session.flush()

    def remove_country_rule(self, rule_id: int) -> None:
        self.session.execute(
            delete(CountryRuleRow).where(
                CountryRuleRow.id == rule_id, CountryRuleRow.site == self.site
            )
        )

    def clear_country_rules(self) -> None:
        self.session.execute(delete(CountryRuleRow).where(CountryRuleRow.site == self.site))

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
        if data is None:
            return None
        try:
            return unpack_table(data)
        except ValueError as exc:
            raise StorageError(
                f"the stored country database is damaged ({exc}); import it again"
            ) from None

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
