"""Sites: each one configuration of the fleet (issue 16, docs/fleet-sites.md).

A *site* is one configuration: its networks, custom services, settings and
the revision and apply state that go with them. Administrators, sessions,
bans and nodes are fleet-wide; a node belongs to one site. A single PBX has
the one site ``default`` and never needs the word.

Pure: names and the errors that name the fix.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from pbxfw.domain.nodes import DEFAULT_SITE, NODE_NAME_MAX, validate_node_name
from pbxfw.errors import FieldError, ValidationError

__all__ = [
    "DEFAULT_SITE",
    "FLEET_SITE",
    "SITE_NAME_MAX",
    "Site",
    "UnknownSiteError",
    "validate_site_name",
]

#: The ``site`` value of the rows that belong to no site (fleet-wide meta
#: values such as ``bans_revision``): no site can be named so (a site name
#: is never empty), so no site's reads or writes ever touch them.
FLEET_SITE = ""
#: The longest site name (the node names' rule: one DNS label).
SITE_NAME_MAX = NODE_NAME_MAX


def validate_site_name(name: str, field: str = "site") -> str:
    """``name`` if it is a valid site name: the node names' rule (1–63
    letters, digits, ``-``, ``_``, ``.``, first a letter or a digit).

    Raises :class:`ValidationError` on ``field`` naming the fix.
    """
    try:
        return validate_node_name(name, field)
    except ValidationError as exc:
        raise ValidationError(
            [FieldError(e.field, e.message.replace("node name", "site name")) for e in exc.errors]
        ) from None


class UnknownSiteError(ValidationError):
    """A site that does not exist was named (CLI exit 2 naming ``--site``, HTTP 422)."""

    def __init__(self, name: str, field: str = "site") -> None:
        super().__init__(
            FieldError(
                field,
                f"there is no site {name!r}; `pbxfw site list` shows the sites, "
                f"`pbxfw site add {name}` makes one",
            )
        )
        self.name = name

    def on(self, field: str) -> UnknownSiteError:
        """The same error on another field (``--site`` on the command line)."""
        return UnknownSiteError(self.name, field)


@dataclass(frozen=True, slots=True)
class Site:
    """One site: its name and when it was made (epoch seconds)."""

    name: str
    created_at: float

    def as_json(self) -> dict[str, Any]:
        """The site as ``pbxfw site list --json`` and ``GET /api/v1/sites`` show it."""
        return {"name": self.name, "created_at": self.created_at}
