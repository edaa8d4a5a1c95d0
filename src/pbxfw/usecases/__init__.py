"""The use cases, one module per noun; every adapter (CLI, REST, web, agent) calls these.

- ``config``: ``ConfigService`` (networks, services, settings, check, export/import),
  composed of ``networks``, ``services``, ``settings``, ``document`` over ``base``;
  ``asterisk``: Asterisk discovery
- ``users``: administrators of the web page and the REST API
- ``bans``: the ban list (storage side; the agent keeps the kernel equal to it)
"""

from pbxfw.usecases.config import (
    ConfigService,
    DiscoveryReport,
    InitReport,
    NetworkChange,
    discover_asterisk,
    document_of,
    network_json,
    normalised,
)

__all__ = [
    "ConfigService",
    "DiscoveryReport",
    "InitReport",
    "NetworkChange",
    "discover_asterisk",
    "document_of",
    "network_json",
    "normalised",
]
