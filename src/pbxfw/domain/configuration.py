"""The whole configuration as one immutable value: networks, custom services, settings."""

from __future__ import annotations

from dataclasses import dataclass, field

from pbxfw.domain.networks import Network
from pbxfw.domain.services import BUILTIN_KEYS, CustomService, Service, catalogue
from pbxfw.domain.settings import Settings

__all__ = ["Configuration"]


@dataclass(frozen=True, slots=True)
class Configuration:
    """What the decision and the compiler read; built by storage, never mutated."""

    networks: tuple[Network, ...] = ()
    custom_services: tuple[CustomService, ...] = ()
    settings: Settings = field(default_factory=Settings)

    def services(self) -> tuple[Service, ...]:
        return catalogue(self.settings, self.custom_services)

    def service_keys(self) -> tuple[str, ...]:
        return BUILTIN_KEYS + tuple(sorted(c.key for c in self.custom_services))

    def has_service(self, key: str) -> bool:
        """Cheap membership test (``check`` runs it on every call)."""
        return key in BUILTIN_KEYS or any(c.key == key for c in self.custom_services)
