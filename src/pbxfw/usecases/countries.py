"""Country rules (issue 17): add, change, remove, list, look an address up.

Each edit is one unit of work: the one validator
(``pbxfw.domain.countries.validate_country_rule``) first, then one
transaction that also bumps the configuration revision.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from pbxfw.domain.addresses import address_text, parse_address
from pbxfw.domain.countries import CountryRule, rule_for, services_of, validate_country_rule
from pbxfw.domain.network_model import Verdict
from pbxfw.usecases.base import ConfigBase, stored_configuration

__all__ = ["CountryCases", "CountryLookup"]


@dataclass(frozen=True, slots=True)
class CountryLookup:
    """The answer of ``country lookup``: the country, the range holding the
    address, and the rule that would refine its ``Internet`` verdicts."""

    address: str
    country: str | None
    first: str | None
    last: str | None
    rule: str | None

    def as_json(self) -> dict[str, object]:
        return {
            "address": self.address,
            "country": self.country,
            "range": None if self.first is None else f"{self.first}-{self.last}",
            "rule": self.rule,
        }


class CountryCases(ConfigBase):
    """The country rule use cases of :class:`~pbxfw.usecases.config.ConfigService`."""

    def country_rules(self) -> list[CountryRule]:
        with self.store.read() as repo:
            return list(stored_configuration(repo).country_rules)

    def add_country(
        self, name: str, codes: str, allow: Sequence[str] = (), block: Sequence[str] = ()
    ) -> CountryRule:
        with self._edit() as repo:
            config = stored_configuration(repo)
            rule = validate_country_rule(
                name,
                codes,
                services_of(allow, block),
                config.country_rules,
                config.service_keys(),
            )
            rule = repo.add_country_rule(rule)
            repo.bump_revision()
            return rule

    def set_country(
        self,
        ref: str,
        *,
        name: str | None = None,
        codes: str | None = None,
        allow: Sequence[str] = (),
        block: Sequence[str] = (),
        inherit: Sequence[str] = (),
    ) -> CountryRule:
        """Change a rule; ``inherit`` gives services back to the ``Internet`` network."""
        with self._edit() as repo:
            config = stored_configuration(repo)
            old = repo.country_rule(ref)
            services: dict[str, Verdict] = {
                k: v for k, v in old.services.items() if k not in set(inherit)
            }
            services.update(services_of(allow, block))
            rule = validate_country_rule(
                old.name if name is None else name,
                old.codes if codes is None else codes,
                services,
                config.country_rules,
                config.service_keys(),
                own_id=old.id,
            )
            repo.update_country_rule(rule)
            repo.bump_revision()
            return rule

    def remove_country(self, ref: str) -> CountryRule:
        with self._edit() as repo:
            rule = repo.country_rule(ref)
            assert rule.id is not None
            repo.remove_country_rule(rule.id)
            repo.bump_revision()
            return rule

    def lookup_country(self, address: str) -> CountryLookup:
        ip = parse_address(address)
        with self.store.read() as repo:
            table = repo.geo_table()
            rules = repo.country_rules()
        found = None if table is None else table.find(ip)
        code = None if found is None else found[2]
        rule = rule_for(code, rules)
        return CountryLookup(
            str(ip),
            code,
            None if found is None else address_text(found[0], ip.version),
            None if found is None else address_text(found[1], ip.version),
            None if rule is None else rule.name,
        )
