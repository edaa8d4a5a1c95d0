"""The use cases: validate → store (→ compile → apply, with the dataplane).

The CLI, the REST API, the web page and the agent all call these, so a rule
is enforced once, wherever a request came from. Each method is one unit of
work: it validates everything first, then writes in one transaction that
also bumps the configuration revision; on any error nothing is stored.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from pbxfw.domain.addresses import parse_address
from pbxfw.domain.configuration import Configuration
from pbxfw.domain.decision import ActiveBan, Decision, check
from pbxfw.domain.networks import (
    Network,
    NetworkIndex,
    Verdict,
    clash_error,
    inherited_services,
    name_clash,
    name_key,
    normalised,
    permanent_networks,
    resolve_services,
    validate_network,
)
from pbxfw.domain.services import (
    BUILTIN_KEYS,
    BUILTIN_LABELS,
    CustomService,
    Service,
    format_ports,
)
from pbxfw.domain.settings import Settings
from pbxfw.errors import (
    ConflictError,
    FieldError,
    NotFoundError,
    PermanentError,
    ValidationError,
)
from pbxfw.storage.repository import Repository, Store
from pbxfw.usecases.bans import lift_whitelisted

__all__ = [
    "ConfigService",
    "DiscoveryReport",
    "InitReport",
    "NetworkChange",
    "discover_asterisk",
    "label_clash",
    "normalised",
    "stored_configuration",
]


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
        """The fields given, for :func:`~pbxfw.domain.networks.validate_network`.

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


def stored_configuration(repo: Repository) -> Configuration:
    """Inside a unit of work: the stored configuration, normalised (the only way to read it)."""
    return repo.configuration().normalised()


class ConfigService:
    """Networks, services, settings, check, export and import over one Store."""

    def __init__(self, store: Store) -> None:
        self.store = store

    @contextmanager
    def _edit(self) -> Iterator[Repository]:
        """The write unit of work of an edit, made on top of what the kernel holds.

        A change the kernel rolled back (or whose confirmation window ran
        out) is carried into storage first, so the edit lands on the last
        confirmed configuration and is what the next apply loads
        (pbxfw.usecases.firewall, docs/decisions.md "Apply and rollback").
        """
        from pbxfw.usecases.firewall import carry_rollbacks, settle_rollbacks

        settle_rollbacks(self.store)
        with self.store.write() as repo:
            carry_rollbacks(repo)  # one that happened a moment ago
            yield repo

    # -- init -------------------------------------------------------------
    def init(self, ssh_client: str | None = None) -> InitReport:
        """Ensure the revision counter and the permanent networks; trust the installer.

        ``ssh_client`` is the value of ``SSH_CLIENT`` ("ADDR PORT PORT"). Its
        address gets a /32 or /128 network with SSH and WEB allowed and
        never-block set, unless a network with that exact subnet exists.
        Idempotent: a second run changes nothing.
        """
        report = InitReport()
        with self._edit() as repo:
            if repo.get_meta("revision") is None:
                repo.set_meta("revision", "0")
            changed = False
            config = stored_configuration(repo)
            existing = {str(n.subnet) for n in config.networks}
            keys = config.service_keys()
            for network in permanent_networks(keys):
                if str(network.subnet) not in existing:
                    name = network.name
                    if name_clash(name, config.networks) is not None:
                        name = f"{name} ({network.subnet})"
                    repo.add_network(network.with_changes(name=name))
                    report.created_permanent.append(name)
                    changed = True
            if ssh_client:
                trusted = self._trusted_installer(repo, ssh_client)
                if trusted is not None:
                    report.trusted = repo.add_network(trusted)
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
        services = inherited_services(subnet, config.networks, config.service_keys())
        services.update(ssh=Verdict.ALLOW, web=Verdict.ALLOW)
        name = f"Installer {address}"[:64]
        return Network(
            name,
            subnet,
            services,
            never_block=True,
            description="added by `pbxfw init` from SSH_CLIENT so the installer keeps access",
        )

    # -- reads --------------------------------------------------------------
    def configuration(self) -> Configuration:
        with self.store.read() as repo:
            return stored_configuration(repo)

    def revision(self) -> int:
        with self.store.read() as repo:
            return repo.revision()

    def unapplied(self) -> bool:
        """True when the stored configuration changed since the last apply."""
        with self.store.read() as repo:
            applied = repo.get_meta("applied_revision")
            return applied is None or int(applied) != repo.revision()

    def networks(self) -> list[Network]:
        return list(self.configuration().networks)

    def network(self, ref: str | int) -> Network:
        with self.store.read() as repo:
            network = repo.network(ref)
            return normalised(network, stored_configuration(repo).service_keys())

    def services(self) -> tuple[Service, ...]:
        return self.configuration().services()

    def settings(self) -> Settings:
        with self.store.read() as repo:
            return repo.settings()

    def check(self, address: str, service: str, bans: Iterable[ActiveBan] = ()) -> Decision:
        return check(self.configuration(), address, service, bans=bans)

    # -- networks -----------------------------------------------------------
    def add_network(self, change: NetworkChange) -> tuple[Network, list[str]]:
        """Add a network; services not named keep the verdict their addresses had.

        Returns the stored network and notes (e.g. host bits zeroed).
        Validation is :func:`~pbxfw.domain.networks.validate_network`'s.
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
            repo.bump_revision()

    # -- settings ------------------------------------------------------------
    def update_settings(self, changes: Mapping[str, Any], *, strict: bool = False) -> Settings:
        """Validate ``changes`` against the current settings as a whole, then store.

        ``strict`` (REST, JSON): each value must have its JSON type; otherwise
        text is parsed too (CLI, web forms). See ``Settings.updated``.
        """
        with self._edit() as repo:
            current = repo.settings()
            updated = current.updated(changes, strict=strict)
            new = updated.model_dump()
            differing = {k: v for k, v in new.items() if current.model_dump()[k] != v}
            touched = {k: new[k] for k in changes if k in new} | differing
            if touched:
                repo.save_settings(touched)
                repo.bump_revision()
                if "ips_whitelist" in touched:
                    lift_whitelisted(repo)
        return updated

    # -- document ------------------------------------------------------------
    def export_document(self) -> dict[str, Any]:
        """The whole configuration (DESIGN §5); the same configuration, the same document."""
        return document_of(self.configuration())

    def import_document(self, document: object) -> tuple[Configuration, list[str]]:
        """Replace the configuration with ``document``'s, all or nothing.

        The permanent networks remain; the document's networks with their
        subnets (``0.0.0.0/0``, ``::/0``) change their name, services, flags.
        Errors and notes name the place, e.g. ``networks[3].subnet``; each
        network is checked as ``network add`` checks it.
        """
        parsed = parse_document(document)
        with self._edit() as repo:
            replace_configuration(repo, parsed)
            return stored_configuration(repo), parsed.notes


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


# -- the configuration document -------------------------------------------------------


def replace_configuration(repo: Repository, parsed: ParsedDocument) -> None:
    """Inside a write unit of work: the stored configuration becomes ``parsed``'s.

    The permanent networks remain; the document's networks with their
    subnets change their name, services and flags.
    """
    permanent = {str(n.subnet): n for n in repo.networks() if n.permanent}
    # A permanent network the document does not list stays with its name: a
    # document network may not take that name in another spelling.
    replaced = {str(n.subnet) for n in parsed.networks}
    kept = [n for subnet, n in permanent.items() if subnet not in replaced]
    clashes = [
        clash_error(n.name, other, f"networks[{i}].name")
        for i, n in enumerate(parsed.networks)
        if (other := name_clash(n.name, kept)) is not None
    ]
    if clashes:
        raise ConflictError(clashes)
    repo.remove_all_networks(keep_permanent=True)
    repo.remove_all_custom_services()
    repo.replace_settings(parsed.settings_values)
    for custom in parsed.custom_services:
        repo.add_custom_service(custom)
    plain = []
    taken = {n.id for n in permanent.values()}
    for network in parsed.networks:
        existing = permanent.get(str(network.subnet))
        if existing is not None:
            repo.update_network(network.with_changes(id=existing.id, permanent=True))
        else:
            # Keep the document's id (a round trip keeps ids) unless it is taken.
            if network.id in taken:
                network = network.with_changes(id=None)
            taken.add(network.id)
            plain.append(network)
    try:
        repo.add_networks(plain)
    except Exception as exc:  # ids clashing with permanent rows, say
        raise ConflictError(FieldError("networks", f"cannot store: {exc}")) from None
    repo.bump_revision()
    lift_whitelisted(repo)


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


def custom_service_json(service: CustomService) -> dict[str, Any]:
    return {
        "key": service.key,
        "label": service.label,
        "tcp": format_ports(service.tcp).replace(" ", ""),
        "udp": format_ports(service.udp).replace(" ", ""),
    }


def document_of(config: Configuration) -> dict[str, Any]:
    return {
        "networks": [network_json(n) for n in config.networks],
        "services": [custom_service_json(c) for c in config.custom_services],
        "settings": config.settings.model_dump(),
    }


@dataclass(slots=True)
class ParsedDocument:
    networks: list[Network]
    custom_services: list[CustomService]
    settings: Settings
    settings_values: dict[str, Any]
    #: What was made canonical, by place (e.g. host bits zeroed).
    notes: list[str] = field(default_factory=list)


_NETWORK_FIELDS = {"id", "name", "subnet", "services", "local", "never_block", "description"}


def parse_document(document: object, *, stored: bool = False) -> ParsedDocument:
    """Validate a whole configuration document; every error names its place.

    ``stored``: a document pbxfw itself stored (the applied or confirmed
    configuration), perhaps before a settings rule existed: a setting that
    breaks a rule takes its default instead of refusing the document, as
    stored settings do (``Settings.from_stored``). Imports are strict.
    """
    if not isinstance(document, dict):
        raise ValidationError(
            FieldError("document", "must be a JSON object with networks, services, settings")
        )
    errors: list[FieldError] = []
    unknown = sorted(set(document) - {"networks", "services", "settings"})
    errors += [
        FieldError(k, "unknown top-level key; expected networks, services, settings")
        for k in unknown
    ]

    custom: list[CustomService] = []
    raw_services = document.get("services", [])
    if not isinstance(raw_services, list):
        errors.append(FieldError("services", "must be a list of custom services"))
        raw_services = []
    for i, item in enumerate(raw_services):
        if not isinstance(item, dict):
            errors.append(
                FieldError(f"services[{i}]", "must be an object with key, label, tcp, udp")
            )
            continue
        try:
            custom.append(
                CustomService.create(
                    str(item.get("key", "")),
                    str(item.get("label", "")),
                    str(item.get("tcp", "")),
                    str(item.get("udp", "")),
                )
            )
        except ValidationError as exc:
            errors += exc.prefixed(f"services[{i}]").errors
    if len({c.key for c in custom}) != len(custom):
        errors.append(FieldError("services", "a custom service key appears twice"))
    for i, service in enumerate(custom):
        taken = label_clash(service, custom[:i], f"services[{i}].label")
        if taken is not None:
            errors.append(taken)

    raw_settings = document.get("settings", {})
    settings = Settings()
    settings_values: dict[str, Any] = {}
    if not isinstance(raw_settings, dict):
        errors.append(FieldError("settings", "must be an object of setting keys and values"))
    else:
        try:
            if stored:
                settings, ignored = Settings.from_stored(raw_settings)
                left_out = {e.field for e in ignored}
                raw_settings = {k: v for k, v in raw_settings.items() if k not in left_out}
            else:
                settings = Settings().updated(raw_settings, strict=True)
            settings_values = {k: getattr(settings, k) for k in raw_settings if k != "ips_preset"}
        except ValidationError as exc:
            errors += exc.prefixed("settings").errors

    keys = [s.key for s in Configuration((), tuple(custom), settings).services()]
    notes: list[str] = []
    networks = _parse_networks(document.get("networks", []), keys, errors, notes)
    if errors:
        raise ValidationError(errors)
    return ParsedDocument(networks, custom, settings, settings_values, notes)


def _parse_networks(
    raw: object, keys: list[str], errors: list[FieldError], notes: list[str]
) -> list[Network]:
    """The document's networks, each checked by ``validate_network`` in order.

    A network may not repeat the name, subnet or id of one before it in the
    document; errors and notes carry the place (``networks[3].subnet``).
    """
    if not isinstance(raw, list):
        errors.append(FieldError("networks", "must be a list of networks"))
        return []
    valid: list[tuple[int, Network, Mapping[str, object]]] = []
    seen = NetworkIndex()
    for i, item in enumerate(raw):
        where = f"networks[{i}]"
        if not isinstance(item, dict):
            errors.append(FieldError(where, "must be an object with name, subnet, services"))
            continue
        for extra in sorted(set(item) - _NETWORK_FIELDS):
            errors.append(FieldError(f"{where}.{extra}", "unknown field"))
        fields = {k: v for k, v in item.items() if k in _NETWORK_FIELDS}
        try:
            # Verdicts are inherited below, once every network is known.
            network, found = validate_network(fields, seen, keys, base={})
        except ValidationError as exc:
            errors += exc.prefixed(where).errors
            continue
        seen.add(network)
        notes += [f"{where}: {note}" for note in found]
        valid.append((i, network, fields))
    if errors:
        return []
    # Services a network does not name take the verdict of the most specific
    # network of the document containing it, as `network add` does; broader
    # networks resolve first so that their children can inherit from them.
    resolved = NetworkIndex()
    permanent_defaults = {n.subnet: n.services for n in permanent_networks(keys)}
    networks: dict[int, Network] = {}
    for i, network, item_fields in sorted(valid, key=lambda t: t[1].subnet.prefixlen):
        parent = resolved.parent(network.subnet)
        base = parent.services if parent else permanent_defaults.get(network.subnet, {})
        given = item_fields.get("services")
        explicit = given if isinstance(given, dict) else None
        network = network.with_changes(services=resolve_services(base, (), (), keys, explicit))
        resolved.add(network)
        networks[i] = network
    return [networks[i] for i in sorted(networks)]


# -- Asterisk integration ----------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class DiscoveryReport:
    """What ``asterisk discover`` found, changed and noted."""

    changes: dict[str, int]
    lines: list[str]
    notes: list[str]
    settings: Settings


def discover_asterisk(
    svc: ConfigService, config_dir: str, sshd_config: str | None = "/etc/ssh/sshd_config"
) -> DiscoveryReport:
    """Read the PBX's ports from its configuration into the settings (one unit of work)."""
    from pathlib import Path

    from pbxfw.asterisk.discover import discover

    found = discover(Path(config_dir), Path(sshd_config) if sshd_config else None)
    with svc._edit() as repo:
        current = repo.settings()
        changes = found.changes(current)
        lines = found.describe_changes(current)
        updated = current.updated(changes)
        if changes:
            repo.save_settings(changes)
            repo.bump_revision()
    return DiscoveryReport(changes, lines, list(found.notes), updated)
