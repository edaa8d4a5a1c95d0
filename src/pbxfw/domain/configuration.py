"""The whole configuration as one immutable value: networks, custom services, settings."""

from __future__ import annotations

from dataclasses import dataclass, field, replace

from pbxfw.domain.countries import CountryRule
from pbxfw.domain.geo import CountryTable
from pbxfw.domain.network_model import Network, normalised
from pbxfw.domain.services import BUILTIN_KEYS, CustomService, Service, catalogue
from pbxfw.domain.settings import Settings

__all__ = ["Configuration"]


@dataclass(frozen=True, slots=True)
class Configuration:
    """What the decision and the compiler read; built by storage, never mutated."""

    networks: tuple[Network, ...] = ()
    custom_services: tuple[CustomService, ...] = ()
    settings: Settings = field(default_factory=Settings)
    #: Country rules (issue 17) and the country database they read; the
    #: table is loaded only when there are rules (None: no database).
    country_rules: tuple[CountryRule, ...] = ()
    countries: CountryTable | None = None

    def services(self) -> tuple[Service, ...]:
        return catalogue(self.settings, self.custom_services)

    def service_keys(self) -> tuple[str, ...]:
        return BUILTIN_KEYS + tuple(sorted(c.key for c in self.custom_services))

    def normalised(self) -> Configuration:
        """This configuration with exactly one verdict per catalogue key in every network.

        What the use cases read (a stored network may lack a verdict for a
        service added after it, or hold one for a service since removed); a
        missing verdict is block.
        """
        keys = self.service_keys()
        rules = tuple(
            r.with_changes(services={k: v for k, v in r.services.items() if k in keys})
            for r in self.country_rules
        )
        return replace(
            self, networks=tuple(normalised(n, keys) for n in self.networks), country_rules=rules
        )

    def has_service(self, key: str) -> bool:
        """Cheap membership test (``check`` runs it on every call)."""
        return key in BUILTIN_KEYS or any(c.key == key for c in self.custom_services)
