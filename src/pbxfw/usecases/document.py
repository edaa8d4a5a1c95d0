"""The configuration document (DESIGN §5): export, parse, import."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from pbxfw.domain.configuration import Configuration
from pbxfw.domain.countries import CountryRule, country_rule_json, validate_country_rule
from pbxfw.domain.network_model import (
    Network,
    Verdict,
    clash_error,
    name_clash,
    resolve_services,
)
from pbxfw.domain.network_validation import NetworkIndex, validate_network
from pbxfw.domain.networks import permanent_networks
from pbxfw.domain.services import CustomService
from pbxfw.domain.settings import Settings
from pbxfw.errors import ConflictError, FieldError, ValidationError
from pbxfw.storage.repository import Repository
from pbxfw.usecases.bans import lift_whitelisted
from pbxfw.usecases.base import ConfigBase, stored_configuration
from pbxfw.usecases.networks import network_json
from pbxfw.usecases.services import custom_service_json, label_clash

__all__ = [
    "DocumentCases",
    "ParsedDocument",
    "document_of",
    "parse_document",
    "replace_configuration",
]


class DocumentCases(ConfigBase):
    """Export and import of :class:`~pbxfw.usecases.config.ConfigService`."""

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
        with self._edit(via="import") as repo:
            replace_configuration(repo, parsed)
            return stored_configuration(repo), parsed.notes


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
    repo.clear_country_rules()
    for rule in parsed.country_rules:
        repo.add_country_rule(rule)
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


def document_of(config: Configuration) -> dict[str, Any]:
    """The document; ``countries`` only when there are country rules, so a
    configuration without them gives the same bytes as before issue 17."""
    document: dict[str, Any] = {
        "networks": [network_json(n) for n in config.networks],
        "services": [custom_service_json(c) for c in config.custom_services],
        "settings": config.settings.model_dump(),
    }
    if config.country_rules:
        document["countries"] = [country_rule_json(r) for r in config.country_rules]
    return document


@dataclass(slots=True)
class ParsedDocument:
    networks: list[Network]
    custom_services: list[CustomService]
    settings: Settings
    settings_values: dict[str, Any]
    #: What was made canonical, by place (e.g. host bits zeroed).
    notes: list[str] = field(default_factory=list)
    country_rules: list[CountryRule] = field(default_factory=list)


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
    unknown = sorted(set(document) - {"networks", "services", "settings", "countries"})
    errors += [
        FieldError(k, "unknown top-level key; expected networks, services, settings, countries")
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
    rules = _parse_countries(document.get("countries", []), keys, errors)
    if errors:
        raise ValidationError(errors)
    return ParsedDocument(networks, custom, settings, settings_values, notes, rules)


_COUNTRY_FIELDS = {"id", "name", "codes", "services"}


def _parse_countries(raw: object, keys: list[str], errors: list[FieldError]) -> list[CountryRule]:
    """The document's country rules, each checked by ``validate_country_rule``
    against the ones before it; errors carry the place (``countries[1].codes``)."""
    if not isinstance(raw, list):
        errors.append(FieldError("countries", "must be a list of country rules"))
        return []
    rules: list[CountryRule] = []
    for i, item in enumerate(raw):
        where = f"countries[{i}]"
        if not isinstance(item, dict):
            errors.append(FieldError(where, "must be an object with name, codes, services"))
            continue
        for extra in sorted(set(item) - _COUNTRY_FIELDS):
            errors.append(FieldError(f"{where}.{extra}", "unknown field"))
        codes, services = item.get("codes", []), item.get("services", {})
        if not isinstance(codes, list) or not all(isinstance(c, str) for c in codes):
            errors.append(FieldError(f"{where}.codes", 'must be a list of codes such as ["DE"]'))
            continue
        if not isinstance(services, dict) or not all(
            v in ("allow", "block") for v in services.values()
        ):
            errors.append(
                FieldError(f"{where}.services", 'must map service keys to "allow" or "block"')
            )
            continue
        try:
            rule = validate_country_rule(
                str(item.get("name", "")),
                codes,
                {k: Verdict(v) for k, v in services.items()},
                rules,
                keys,
            )
        except ValidationError as exc:
            errors += exc.prefixed(where).errors
            continue
        rule_id = item.get("id")
        rules.append(rule.with_changes(id=rule_id if isinstance(rule_id, int) else None))
    return rules


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
