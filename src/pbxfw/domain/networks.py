"""Networks: a name, a canonical subnet, an allow/block per service, two flags.

This module holds the two permanent networks (``Internet``, ``Internet
IPv6``) and is where every network name is imported from: the model and the
per-field rules live in ``pbxfw.domain.network_model``, the whole-network
validator and ``NetworkIndex`` in ``pbxfw.domain.network_validation``; both
are re-exported here. Pure: no I/O.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable

from pbxfw.domain.network_model import (
    ID_MAX,
    Network,
    Verdict,
    clash_error,
    inherited_services,
    most_specific,
    name_clash,
    name_key,
    network_id,
    normalised,
    resolve_services,
    validate_description,
    validate_name,
)
from pbxfw.domain.network_validation import NETWORK_FIELDS, NetworkIndex, validate_network
from pbxfw.domain.services import BUILTIN_KEYS

__all__ = [
    "ID_MAX",
    "INTERNET_V4",
    "INTERNET_V6",
    "NETWORK_FIELDS",
    "PERMANENT_DEFAULT_ALLOW",
    "Network",
    "NetworkIndex",
    "Verdict",
    "clash_error",
    "inherited_services",
    "most_specific",
    "name_clash",
    "name_key",
    "network_id",
    "normalised",
    "permanent_networks",
    "resolve_services",
    "validate_description",
    "validate_name",
    "validate_network",
]


INTERNET_V4 = ipaddress.ip_network("0.0.0.0/0")
INTERNET_V6 = ipaddress.ip_network("::/0")
#: Services the permanent networks allow on a fresh install: phones must be
#: able to register and ping must work; everything administrative is closed.
PERMANENT_DEFAULT_ALLOW = frozenset({"sip", "icmp"})


def permanent_networks(keys: Iterable[str] = BUILTIN_KEYS) -> tuple[Network, Network]:
    """``Internet`` and ``Internet IPv6`` as a fresh install has them."""
    services = {k: Verdict.ALLOW if k in PERMANENT_DEFAULT_ALLOW else Verdict.BLOCK for k in keys}
    return (
        Network("Internet", INTERNET_V4, dict(services), permanent=True),
        Network("Internet IPv6", INTERNET_V6, dict(services), permanent=True),
    )
