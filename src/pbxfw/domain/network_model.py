"""The network model: a name, a canonical subnet, an allow/block per service, two flags.

``Network`` and ``Verdict``, the rules for one field at a time (name,
description, id), how names compare (``name_key``), and the service
arithmetic (``resolve_services``, ``inherited_services``, ``normalised``).
The whole-network validator is ``pbxfw.domain.network_validation``; the
permanent networks and the public names are ``pbxfw.domain.networks``.
Pure: no I/O.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from enum import StrEnum

from pbxfw.domain.addresses import IPNetwork
from pbxfw.domain.services import BUILTIN_KEYS
from pbxfw.errors import FieldError, ValidationError

__all__ = [
    "ID_MAX",
    "Network",
    "Verdict",
    "clash_error",
    "inherited_services",
    "most_specific",
    "name_clash",
    "name_key",
    "network_id",
    "normalised",
    "resolve_services",
    "validate_description",
    "validate_name",
]

NAME_MAX = 64
DESCRIPTION_MAX = 255
#: The largest id a network can have: SQLite's INTEGER (and PostgreSQL's
#: BIGINT) is a signed 64-bit number; a larger reference cannot name a row.
ID_MAX = 2**63 - 1


class Verdict(StrEnum):
    ALLOW = "allow"
    BLOCK = "block"


@dataclass(frozen=True, slots=True)
class Network:
    """A network as stored: ``services`` holds a verdict for every catalogue key."""

    name: str
    subnet: IPNetwork
    services: Mapping[str, Verdict] = field(default_factory=dict)
    local: bool = False
    never_block: bool = False
    description: str = ""
    permanent: bool = False
    id: int | None = None

    def verdict(self, service: str) -> Verdict:
        """This network's verdict for ``service`` (block when it has none)."""
        value = self.services.get(service, Verdict.BLOCK)
        # The compiler asks 10,000 networks about every service: skip the
        # enum call when the value already is a Verdict (it nearly always is).
        return value if value.__class__ is Verdict else Verdict(value)

    def with_changes(self, **changes: object) -> Network:
        return replace(self, **changes)  # type: ignore[arg-type]


def validate_name(name: str, field: str = "name") -> str:
    """1–64 printable characters; returns the canonical name (surrounding space stripped).

    Control characters are refused wherever they are (a tab or newline at the
    end too: it is a paste gone wrong, not a space to trim); spaces around the
    name are dropped, so ``"Office "`` is stored as ``"Office"``. Uniqueness is
    :func:`name_clash`'s.
    """
    if not name.isprintable():
        raise ValidationError(
            FieldError(field, "contains control characters (tab, newline, ...); remove them")
        )
    name = name.strip()
    if not name:
        raise ValidationError(FieldError(field, "is empty; give the network a name"))
    if len(name) > NAME_MAX:
        raise ValidationError(
            FieldError(field, f"is {len(name)} characters long; the limit is {NAME_MAX}")
        )
    return name


def name_key(name: str) -> str:
    """What two names are compared by: no surrounding space, Unicode NFKC, casefolded.

    ``"Internet"``, ``"internet"`` and ``" INTERNET "`` have the same key, so
    only one of them can exist; so do look-alikes such as full-width letters.
    """
    return unicodedata.normalize("NFKC", name.strip()).casefold()


def name_clash(name: str, networks: Iterable[Network], own_id: int | None = None) -> Network | None:
    """The network other than ``own_id`` whose name has the same :func:`name_key`."""
    key = name_key(name)
    for network in networks:
        if own_id is not None and network.id == own_id:
            continue
        if name_key(network.name) == key:
            return network
    return None


def clash_error(name: str, other: Network, field: str = "name") -> FieldError:
    """The message for a taken name, saying why when the spelling differs."""
    why = (
        ""
        if other.name == name
        else " (names are compared without regard to case and surrounding space)"
    )
    return FieldError(field, f"a network named {other.name!r} exists already{why}")


def network_id(ref: str | int) -> int | None:
    """The id ``ref`` names, or None when it cannot be an id (then it is a name).

    An id is a whole number from 1 to :data:`ID_MAX` written in ASCII digits;
    ``0``, ``-1``, ``99999999999999999999`` or ``²`` are not ids, so looking
    them up finds no network instead of failing in the database.
    """
    if isinstance(ref, bool):
        return None
    if isinstance(ref, int):
        value = ref
    elif ref.isascii() and ref.isdigit():
        digits = ref.lstrip("0") or "0"
        if len(digits) > len(str(ID_MAX)):
            return None  # also keeps int() away from thousands of digits
        value = int(digits)
    else:
        return None
    return value if 1 <= value <= ID_MAX else None


def validate_description(text: str | None, field: str = "description") -> str:
    """Optional, ≤ 255 printable characters."""
    text = text or ""
    if len(text) > DESCRIPTION_MAX:
        raise ValidationError(
            FieldError(field, f"is {len(text)} characters long; the limit is {DESCRIPTION_MAX}")
        )
    if not text.isprintable():
        raise ValidationError(FieldError(field, "contains control characters; remove them"))
    return text


def most_specific(subnet: IPNetwork, networks: Iterable[Network]) -> Network | None:
    """The network with the longest prefix that contains all of ``subnet``."""
    best: Network | None = None
    for network in networks:
        if network.subnet.version != subnet.version or not subnet.subnet_of(network.subnet):  # type: ignore[arg-type]
            continue
        if best is None or network.subnet.prefixlen > best.subnet.prefixlen:
            best = network
    return best


def inherited_services(
    subnet: IPNetwork, networks: Iterable[Network], keys: Iterable[str]
) -> dict[str, Verdict]:
    """The verdicts ``subnet``'s addresses have now, before a network is added for it."""
    parent = most_specific(subnet, networks)
    return {k: parent.verdict(k) if parent else Verdict.BLOCK for k in keys}


def resolve_services(
    base: Mapping[str, Verdict],
    allow: Iterable[str] = (),
    block: Iterable[str] = (),
    known: Iterable[str] = BUILTIN_KEYS,
    explicit: Mapping[str, str] | None = None,
) -> dict[str, Verdict]:
    """``base`` with ``allow``/``block``/``explicit`` applied; unknown keys refused.

    Errors name the field (``allow``, ``block`` or ``services.KEY``), list the
    known keys, and a key both allowed and blocked is refused.
    """
    known_keys = tuple(known)
    errors: list[FieldError] = []
    result = {k: Verdict(base.get(k, Verdict.BLOCK)) for k in known_keys}
    hint = "known services: " + ", ".join(known_keys)
    allow, block = list(allow), list(block)
    for key in sorted(set(allow) & set(block)):
        errors.append(FieldError("allow", f"{key!r} is both allowed and blocked; choose one"))
    for field_name, keys, verdict in (
        ("allow", allow, Verdict.ALLOW),
        ("block", block, Verdict.BLOCK),
    ):
        for key in keys:
            if key not in result:
                errors.append(FieldError(field_name, f"unknown service {key!r}; {hint}"))
            else:
                result[key] = verdict
    for key, value in (explicit or {}).items():
        if key not in result:
            errors.append(FieldError(f"services.{key}", f"unknown service {key!r}; {hint}"))
        elif value not in ("allow", "block"):
            errors.append(FieldError(f"services.{key}", f"{value!r} must be allow or block"))
        else:
            result[key] = Verdict(value)
    if errors:
        raise ValidationError(errors)
    return result


def normalised(network: Network, keys: Iterable[str]) -> Network:
    """``network`` with exactly one verdict per catalogue key (missing: block)."""
    keys = tuple(keys)
    if tuple(network.services) == keys:
        return network
    services = network.services
    return network.with_changes(services={k: services.get(k, Verdict.BLOCK) for k in keys})
