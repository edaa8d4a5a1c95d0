"""The use cases: validate → store (→ compile → apply, with the dataplane).

The CLI, the REST API, the web page and the agent all call these, so a rule
is enforced once, wherever a request came from. Each method is one unit of
work: it validates everything first, then writes in one transaction that
also bumps the configuration revision; on any error nothing is stored.

The service is composed of one class per noun, each in its own module
(``networks``, ``services``, ``settings``, ``document``) over ``base``;
Asterisk discovery is in ``asterisk``. The names below stay importable from
here.
"""

from __future__ import annotations

from pbxfw.domain.network_model import normalised
from pbxfw.usecases.asterisk import DiscoveryReport, discover_asterisk
from pbxfw.usecases.base import ConfigBase, stored_configuration
from pbxfw.usecases.countries import CountryCases
from pbxfw.usecases.document import (
    DocumentCases,
    ParsedDocument,
    document_of,
    parse_document,
    replace_configuration,
)
from pbxfw.usecases.history import HistoryCases
from pbxfw.usecases.networks import (
    InitReport,
    NetworkCases,
    NetworkChange,
    TrustReport,
    network_json,
    trusted_network,
)
from pbxfw.usecases.services import ServiceCases, custom_service_json, label_clash
from pbxfw.usecases.settings import SettingCases

__all__ = [
    "ConfigBase",
    "ConfigService",
    "DiscoveryReport",
    "InitReport",
    "NetworkChange",
    "ParsedDocument",
    "TrustReport",
    "custom_service_json",
    "discover_asterisk",
    "document_of",
    "label_clash",
    "network_json",
    "normalised",
    "parse_document",
    "replace_configuration",
    "stored_configuration",
    "trusted_network",
]


class ConfigService(
    NetworkCases, ServiceCases, SettingCases, DocumentCases, CountryCases, HistoryCases
):
    """Networks, services, settings, country rules, check, export and import, and
    the history of changes, over one Store."""
