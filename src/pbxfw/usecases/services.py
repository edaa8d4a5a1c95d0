"""Custom services: add and remove; the label rule; their JSON form."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from pbxfw.domain.network_model import name_key
from pbxfw.domain.services import (
    BUILTIN_KEYS,
    BUILTIN_LABELS,
    CustomService,
    Service,
    format_ports,
)
from pbxfw.errors import ConflictError, FieldError, NotFoundError, ValidationError
from pbxfw.usecases.base import ConfigBase

__all__ = ["ServiceCases", "custom_service_json", "label_clash"]


class ServiceCases(ConfigBase):
    """The custom service use cases of :class:`~pbxfw.usecases.config.ConfigService`."""

    def services(self) -> tuple[Service, ...]:
        return self.configuration().services()

    # -- custom services -----------------------------------------------------
    def add_service(self, key: str, label: str, tcp: str = "", udp: str = "") -> CustomService:
        """Add a custom service; every network blocks it until allowed."""
        service = CustomService.create(key, label, tcp, udp)
        with self._edit() as repo:
            taken = label_clash(service, repo.custom_services())
            if taken is not None:
                raise ConflictError(taken)
            repo.add_custom_service(service)
            repo.bump_revision()
        return service

    def remove_service(self, key: str) -> None:
        if key in BUILTIN_KEYS:
            raise ValidationError(FieldError("key", f"{key!r} is built-in and cannot be removed"))
        with self._edit() as repo:
            if key not in {s.key for s in repo.custom_services()}:
                raise NotFoundError(f"no custom service {key!r}; see `pbxfw service list`")
            repo.remove_custom_service(key)
            for network in repo.networks():
                if key in network.services:
                    services = {k: v for k, v in network.services.items() if k != key}
                    repo.update_network(network.with_changes(services=services))
            for rule in repo.country_rules():
                if key in rule.services:
                    kept = {k: v for k, v in rule.services.items() if k != key}
                    repo.update_country_rule(rule.with_changes(services=kept))
            repo.bump_revision()


def label_clash(
    service: CustomService, others: Iterable[CustomService], field: str = "label"
) -> FieldError | None:
    """The error when ``service``'s label is another service's in another spelling.

    Labels head the columns of the network table, so two services may not
    share one; they are compared as network names are (:func:`name_key`),
    with the built-in labels too. Keys are lower-case by their own rule.
    """
    key = name_key(service.label)
    labels = list(BUILTIN_LABELS.items())
    labels += [(c.key, c.label) for c in others if c.key != service.key]
    for other_key, other_label in labels:
        if name_key(other_label) == key:
            return FieldError(
                field,
                f"{service.label!r} is already the label of service {other_key!r} "
                "(labels are compared without regard to case and surrounding space); "
                "give another label",
            )
    return None


def custom_service_json(service: CustomService) -> dict[str, Any]:
    return {
        "key": service.key,
        "label": service.label,
        "tcp": format_ports(service.tcp).replace(" ", ""),
        "udp": format_ports(service.udp).replace(" ", ""),
    }
