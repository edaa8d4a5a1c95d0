"""Networks: add, change, remove; never block an address (trust); ``init``."""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from pbxfw.domain.addresses import IPNetwork, parse_address, parse_subnet
from pbxfw.domain.bans import Ban
from pbxfw.domain.configuration import Configuration
from pbxfw.domain.network_model import (
    Network,
    Verdict,
    inherited_services,
    name_clash,
    normalised,
)
from pbxfw.domain.network_validation import NetworkIndex, validate_network
from pbxfw.domain.networks import permanent_networks
from pbxfw.errors import FieldError, PermanentError, ValidationError
from pbxfw.storage.repository import Repository
from pbxfw.usecases.bans import lift_whitelisted
from pbxfw.usecases.base import ConfigBase, stored_configuration

__all__ = [
    "InitReport",
    "NetworkCases",
    "NetworkChange",
    "TrustReport",
    "network_json",
    "start_configuration",
    "trusted_network",
]


@dataclass(frozen=True, slots=True)
class TrustReport:
    """What :meth:`ConfigService.trust` did: the never-block network, whether it
    was added (else an existing one was marked or already was), the bans lifted."""

    network: Network
    created: bool
    lifted: list[Ban] = field(default_factory=list)

    def as_json(self) -> dict[str, Any]:
        return {
            "network": network_json(self.network),
            "created": self.created,
            "lifted": [b.address_text() for b in self.lifted],
        }


def trusted_network(
    config: Configuration,
    subnet: IPNetwork,
    name: str,
    description: str,
    allow: Sequence[str] = (),
) -> Network:
    """A new never-block network for ``subnet``: its services keep the verdicts
    its addresses had (the most specific network containing it), plus ``allow``.
    A name already taken gets the subnet appended."""
    services = inherited_services(subnet, config.networks, config.service_keys())
    services.update({key: Verdict.ALLOW for key in allow})
    if name_clash(name[:64], config.networks) is not None:
        name = f"{name} ({subnet})"
    return Network(name[:64], subnet, services, never_block=True, description=description)


@dataclass(frozen=True, slots=True)
class NetworkChange:
    """What a caller gives to add or change a network (None: unchanged/unset)."""

    name: str | None = None
    subnet: str | None = None
    allow: Sequence[str] = ()
    block: Sequence[str] = ()
    services: Mapping[str, str] | None = None
    local: bool | None = None
    never_block: bool | None = None
    description: str | None = None

    def fields(self) -> dict[str, object]:
        """The fields given, for :func:`~pbxfw.domain.network_validation.validate_network`.

        None means "not given": a change leaves the field as it is; a new
        network gets no name or subnet (refused) and no flags (false).
        """
        values: dict[str, object] = {
            "name": self.name,
            "subnet": self.subnet,
            "allow": list(self.allow),
            "block": list(self.block),
            "services": None if self.services is None else dict(self.services),
            "local": self.local,
            "never_block": self.never_block,
            "description": self.description,
        }
        return {k: v for k, v in values.items() if v is not None}


@dataclass(slots=True)
class InitReport:
    created_permanent: list[str] = field(default_factory=list)
    trusted: Network | None = None
    revision: int = 0
    #: the ``log_ssh`` init chose for this host (None: one was stored already)
    ssh_log: str | None = None


def network_json(network: Network) -> dict[str, Any]:
    return {
        "id": network.id,
        "name": network.name,
        "subnet": str(network.subnet),
        "services": {k: str(v) for k, v in network.services.items()},
        "local": network.local,
        "never_block": network.never_block,
        "description": network.description,
    }


def start_configuration(repo: Repository) -> list[str]:
    """Inside a write unit of work: the starting content of ``repo.site``'s
    configuration, as ``pbxfw init`` makes it (the revision counter, the
    permanent networks); the names of the networks it added. Idempotent;
    does not bump the revision (the caller does when something changed).
    ``SiteService.add`` makes a new site's configuration with it.
    """
    if repo.get_meta("revision") is None:
        repo.set_meta("revision", "0")
    created = []
    config = stored_configuration(repo)
    existing = {str(n.subnet) for n in config.networks}
    for network in permanent_networks(config.service_keys()):
        if str(network.subnet) not in existing:
            name = network.name
            if name_clash(name, config.networks) is not None:
                name = f"{name} ({network.subnet})"
            repo.add_network(network.with_changes(name=name))
            created.append(name)
    return created


class NetworkCases(ConfigBase):
    """The network use cases of :class:`~pbxfw.usecases.config.ConfigService`."""

    # -- init -------------------------------------------------------------
    def init(self, ssh_client: str | None = None, ssh_log: str | None = None) -> InitReport:
        """Ensure the revision counter and the permanent networks; trust the installer.

        ``ssh_client`` is the value of ``SSH_CLIENT`` ("ADDR PORT PORT"). Its
        address gets a /32 or /128 network with SSH and WEB allowed and
        never-block set, unless a network with that exact subnet exists.
        ``ssh_log`` (``usecases.hostlogs.ssh_log_for_host``: auth.log or the
        journal, by what the host has) becomes ``log_ssh`` unless a value is
        stored already. Idempotent: a second run changes nothing.
        """
        report = InitReport()
        with self._edit() as repo:
            report.created_permanent = start_configuration(repo)
            changed = bool(report.created_permanent)
            if ssh_log is not None and "log_ssh" not in repo.stored_settings():
                repo.save_settings(
                    {"log_ssh": repo.settings().updated({"log_ssh": ssh_log}).log_ssh}
                )
                report.ssh_log = ssh_log
                changed = True
            if ssh_client:
                trusted = self._trusted_installer(repo, ssh_client)
                if trusted is not None:
                    report.trusted = repo.add_network(trusted)
                    lift_whitelisted(repo)  # as `bans trust` does: the installer is never banned
                    changed = True
            report.revision = repo.bump_revision() if changed else repo.revision()
        return report

    def _trusted_installer(self, repo: Repository, ssh_client: str) -> Network | None:
        try:
            address = parse_address(ssh_client.split()[0], "SSH_CLIENT")
        except (ValidationError, IndexError):
            return None
        subnet = ipaddress.ip_network(address)
        config = stored_configuration(repo)
        if any(n.subnet == subnet for n in config.networks):
            return None
        return trusted_network(
            config,
            subnet,
            f"Installer {address}",
            "added by `pbxfw init` from SSH_CLIENT so the installer keeps access",
            allow=("ssh", "web"),
        )

    # -- never block an address ------------------------------------------------
    def trust(self, address: str) -> TrustReport:
        """Never block ``address`` (an address or CIDR) and lift its bans, in one transaction.

        The network with exactly that subnet is marked never-block; when there
        is none, a never-block network "Never block ADDRESS" is added whose
        services keep the verdicts the address had (like `network add`).
        Every stored ban the never-block networks now cover is lifted. The
        same unit of work serves `pbxfw bans trust`, `POST /api/v1/bans/trust`
        and the banned addresses page; `pbxfw init` builds its installer
        network with :func:`trusted_network` too. Raises ValidationError
        naming ``address`` (nothing stored) for a malformed address or for
        the whole address space.
        """
        subnet = parse_subnet(address, "address")
        if subnet.prefixlen == 0:
            raise ValidationError(
                FieldError(
                    "address",
                    f"{subnet} is every address: never blocking it would switch the intrusion "
                    "prevention off (set ips_enabled to false for that)",
                )
            )
        with self._edit() as repo:
            config = stored_configuration(repo)
            existing = next((n for n in config.networks if n.subnet == subnet), None)
            created = existing is None
            if existing is None:
                host = subnet.prefixlen == subnet.max_prefixlen
                network = repo.add_network(
                    trusted_network(
                        config,
                        subnet,
                        f"Never block {subnet.network_address if host else subnet}",
                        "added by `pbxfw bans trust` (or the banned addresses page)",
                    )
                )
                repo.bump_revision()
            elif not existing.never_block:
                network = existing.with_changes(never_block=True)
                repo.update_network(network)
                repo.bump_revision()
            else:
                network = existing
            lifted = lift_whitelisted(repo)
        return TrustReport(network, created, lifted)

    def networks(self) -> list[Network]:
        return list(self.configuration().networks)

    def network(self, ref: str | int) -> Network:
        with self.store.read() as repo:
            network = repo.network(ref)
            return normalised(network, stored_configuration(repo).service_keys())

    # -- networks -----------------------------------------------------------
    def add_network(self, change: NetworkChange) -> tuple[Network, list[str]]:
        """Add a network; services not named keep the verdict their addresses had.

        Returns the stored network and notes (e.g. host bits zeroed).
        Validation is :func:`~pbxfw.domain.network_validation.validate_network`'s.
        """
        with self._edit() as repo:
            config = stored_configuration(repo)
            network, notes = validate_network(
                change.fields(), NetworkIndex(config.networks), config.service_keys()
            )
            stored = repo.add_network(network)
            repo.bump_revision()
            if stored.never_block:
                lift_whitelisted(repo)
        return stored, notes

    def update_network(self, ref: str | int, change: NetworkChange) -> tuple[Network, list[str]]:
        """Change the named fields of a network; the rest stay as they are."""
        with self._edit() as repo:
            config = stored_configuration(repo)
            keys = config.service_keys()
            current = normalised(repo.network(ref), keys)
            updated, notes = validate_network(
                change.fields(), NetworkIndex(config.networks), keys, current=current
            )
            if updated != current:
                repo.update_network(updated)
                repo.bump_revision()
                if updated.never_block:
                    # Marking a network never-block lifts the bans inside it at once.
                    lift_whitelisted(repo)
        return updated, notes

    def remove_network(self, ref: str | int) -> Network:
        with self._edit() as repo:
            network = repo.network(ref)
            if network.permanent:
                raise PermanentError(
                    f"{network.name!r} ({network.subnet}) is permanent and cannot be removed; "
                    "change its services instead"
                )
            assert network.id is not None
            repo.remove_network(network.id)
            repo.bump_revision()
        return network
