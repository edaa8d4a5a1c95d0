"""The one network validator: ``validate_network`` over a ``NetworkIndex``.

Every entry point (CLI, REST, web form, document import) checks a network
here, so one bad input gets one message wherever it came from. Pure: no I/O.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import TypeVar

from pbxfw.domain.addresses import IPNetwork, parse_subnet_with_note
from pbxfw.domain.network_model import (
    ID_MAX,
    Network,
    Verdict,
    clash_error,
    name_key,
    resolve_services,
    validate_description,
    validate_name,
)
from pbxfw.domain.services import BUILTIN_KEYS
from pbxfw.errors import ConflictError, FieldError, ValidationError

__all__ = ["NETWORK_FIELDS", "NetworkIndex", "validate_network"]

_T = TypeVar("_T")

#: The fields :func:`validate_network` reads. ``allow`` and ``block`` list
#: service keys (the CLI's options, the REST body); ``services`` maps keys to
#: ``allow``/``block`` (the REST body, the web form, the document); ``id`` is a
#: document's own.
NETWORK_FIELDS = frozenset(
    {"id", "name", "subnet", "services", "allow", "block", "local", "never_block", "description"}
)


def _subnet_key(subnet: IPNetwork) -> tuple[int, int, int]:
    return (subnet.version, int(subnet.network_address), subnet.prefixlen)


class NetworkIndex:
    """Networks by name key, subnet and id: what another network may not repeat.

    Also finds the closest network containing a subnet (whose verdicts a new
    network starts from). Every look-up is a few dictionary hits (a parent:
    at most 129), so a document of 10,000 networks is checked in linear time.
    Where two networks share a key (a database from before names were
    compared casefolded), the first added is the one found.
    """

    __slots__ = ("_ids", "_names", "_subnets")

    def __init__(self, networks: Iterable[Network] = ()) -> None:
        self._names: dict[str, list[Network]] = {}
        self._subnets: dict[tuple[int, int, int], list[Network]] = {}
        self._ids: dict[int, Network] = {}
        for network in networks:
            self.add(network)

    def add(self, network: Network) -> None:
        self._names.setdefault(name_key(network.name), []).append(network)
        self._subnets.setdefault(_subnet_key(network.subnet), []).append(network)
        if network.id is not None:
            self._ids.setdefault(network.id, network)

    def named(self, name: str, own_id: int | None = None) -> Network | None:
        """The network other than ``own_id`` whose name has ``name``'s :func:`name_key`."""
        return _other(self._names.get(name_key(name), ()), own_id)

    def with_subnet(self, subnet: IPNetwork, own_id: int | None = None) -> Network | None:
        """The network other than ``own_id`` with exactly ``subnet``."""
        return _other(self._subnets.get(_subnet_key(subnet), ()), own_id)

    def with_id(self, network_id: int) -> Network | None:
        return self._ids.get(network_id)

    def parent(self, subnet: IPNetwork) -> Network | None:
        """The network with the longest prefix containing all of ``subnet`` (as :func:`most_specific`)."""
        version, value, prefix = _subnet_key(subnet)
        width = subnet.max_prefixlen
        for length in range(prefix, -1, -1):
            host_bits = (1 << (width - length)) - 1
            found = self._subnets.get((version, value & ~host_bits, length))
            if found:
                return found[0]
        return None


def _other(networks: Iterable[Network], own_id: int | None) -> Network | None:
    for network in networks:
        if own_id is None or network.id != own_id:
            return network
    return None


def validate_network(
    fields: Mapping[str, object],
    existing: NetworkIndex,
    keys: Sequence[str] = BUILTIN_KEYS,
    *,
    current: Network | None = None,
    base: Mapping[str, Verdict] | None = None,
) -> tuple[Network, list[str]]:
    """The one network validator: the network ``fields`` describe, and notes.

    Every entry point calls it (``network add``/``set``, ``POST``/``PATCH
    /api/v1/networks``, the web form, ``pbxfw import``), so one bad input gets
    one message wherever it came from; a document only puts ``networks[i].``
    before the field.

    ``fields`` maps names of :data:`NETWORK_FIELDS` to what the caller gave.
    A new network (``current`` None) needs a name and a subnet; a change to
    ``current`` replaces only the fields present (its permanent subnet
    cannot change). Values are checked for their type as well (a document is
    JSON): text, true/false, lists and objects. The name is stripped
    (:func:`validate_name`), the subnet made canonical, and a note returned
    when that zeroed host bits ("10.0.0.5/24 has host bits set; stored as
    10.0.0.0/24"). Services not named keep ``current``'s verdict, or take
    ``base``'s, or by default those of the closest network in ``existing``
    containing the new one: what its addresses had.

    A new name, subnet or id that a network of ``existing`` (other than
    ``current``) has is a conflict; names compare by :func:`name_key`. Only
    a changed name or subnet is compared, so a database made before names
    were compared this way keeps its look-alike names editable.

    Raises ValidationError (HTTP 422, exit 2) with one FieldError per
    problem, all at once, keyed by field (``name``, ``subnet``,
    ``services.KEY`` ...); ConflictError (409) when conflicts are the only
    problems. Pure: nothing is stored.
    """
    errors: list[FieldError] = []
    new = current is None

    name = subnet = description = None
    notes: list[str] = []
    if new or "name" in fields:
        text = _text(fields, "name", errors)
        if text is not None:
            name = _checked(errors, validate_name, text)
    if new or "subnet" in fields:
        text = _text(fields, "subnet", errors)
        if text is not None:
            parsed = _checked(errors, parse_subnet_with_note, text)
            if parsed is not None:
                subnet, note = parsed
                notes += [note] if note else []
                if current is not None and current.permanent and subnet != current.subnet:
                    errors.append(
                        FieldError(
                            "subnet",
                            f"{current.name!r} is permanent; its subnet stays "
                            f"{current.subnet} (add another network instead)",
                        )
                    )
    if new or "description" in fields:
        text = _text(fields, "description", errors)
        if text is not None:
            description = _checked(errors, validate_description, text)
    flags: dict[str, bool] = {}
    for flag in ("local", "never_block"):
        if flag in fields:
            value = fields[flag]
            if isinstance(value, bool):
                flags[flag] = value
            else:
                errors.append(FieldError(flag, "must be true or false"))
    network_id = _id(fields, errors) if new else None
    services = _services(fields, keys, errors, current, base, existing, subnet)

    own_id = current.id if current is not None else None
    conflicts: list[FieldError] = []
    if name is not None and (current is None or name != current.name):
        other = existing.named(name, own_id)
        if other is not None:
            conflicts.append(clash_error(name, other))
    if subnet is not None and (current is None or subnet != current.subnet):
        other = existing.with_subnet(subnet, own_id)
        if other is not None:
            message = f"{subnet} is already the subnet of network {other.name!r}"
            conflicts.append(FieldError("subnet", message))
    if network_id is not None:
        other = existing.with_id(network_id)
        if other is not None:
            message = f"{network_id} is already the id of network {other.name!r}"
            conflicts.append(FieldError("id", message))
    if errors or conflicts:
        raise (ValidationError if errors else ConflictError)(errors + conflicts)

    assert services is not None
    if current is None:
        assert name is not None and subnet is not None  # else an error was raised
        network = Network(
            name,
            subnet,
            services,
            local=flags.get("local", False),
            never_block=flags.get("never_block", False),
            description=description or "",
            id=network_id,
        )
    else:
        changes: dict[str, object] = {"services": services, **flags}
        for key, value in (("name", name), ("subnet", subnet), ("description", description)):
            if value is not None:
                changes[key] = value
        network = current.with_changes(**changes)
    return network, notes


def _checked(errors: list[FieldError], check: Callable[[str], _T], text: str) -> _T | None:
    """``check(text)``, or None with its errors added to ``errors``."""
    try:
        return check(text)
    except ValidationError as exc:
        errors += exc.errors
        return None


def _text(fields: Mapping[str, object], key: str, errors: list[FieldError]) -> str | None:
    """The text of ``key`` ("" when absent or null), or None (and an error) if not text."""
    value = fields.get(key)
    if value is None:
        return ""
    if not isinstance(value, str):
        errors.append(FieldError(key, "must be text"))
        return None
    return value


def _id(fields: Mapping[str, object], errors: list[FieldError]) -> int | None:
    value = fields.get("id")
    if value is None:
        return None
    if not isinstance(value, int) or isinstance(value, bool) or not 1 <= value <= ID_MAX:
        errors.append(FieldError("id", "must be a positive whole number or omitted"))
        return None
    return value


def _services(
    fields: Mapping[str, object],
    keys: Sequence[str],
    errors: list[FieldError],
    current: Network | None,
    base: Mapping[str, Verdict] | None,
    existing: NetworkIndex,
    subnet: IPNetwork | None,
) -> dict[str, Verdict] | None:
    """The verdicts after ``allow``, ``block`` and ``services``; None on an error."""
    before = len(errors)
    lists: dict[str, list[str]] = {"allow": [], "block": []}
    for key in lists:
        value = fields.get(key) or []
        if isinstance(value, list | tuple) and all(isinstance(k, str) for k in value):
            lists[key] = list(value)
        else:
            errors.append(FieldError(key, "must be a list of service keys"))
    explicit = fields.get("services")
    if "services" in fields and not isinstance(explicit, dict):
        errors.append(FieldError("services", "must be an object of service: allow|block"))
    if len(errors) > before or not (explicit is None or isinstance(explicit, dict)):
        return None
    if current is not None:
        start: Mapping[str, Verdict] = current.services
    elif base is not None:
        start = base
    elif subnet is not None:
        parent = existing.parent(subnet)
        start = {k: parent.verdict(k) if parent else Verdict.BLOCK for k in keys}
    else:
        start = {}
    try:
        return resolve_services(start, lists["allow"], lists["block"], keys, explicit)
    except ValidationError as exc:
        errors += exc.errors
        return None
