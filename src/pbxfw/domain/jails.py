"""Jails: the names a ban is made under, and the services each one's bans cover.

Domain vocabulary shared by intrusion prevention (which jail a failure
counts in), the ban list (which jail a manual ban is in) and the compiler
(one kernel ban set per jail and family). DESIGN §4.
"""

from __future__ import annotations

from pbxfw.errors import FieldError, ValidationError

__all__ = ["DERIVED_JAILS", "JAIL_SCOPES", "MANUAL_JAIL", "RECIDIVE_JAIL", "validate_jail"]

#: Which services a ban from each jail covers (DESIGN §4). ``*`` = every port.
JAIL_SCOPES: dict[str, frozenset[str]] = {
    "asterisk": frozenset({"sip", "iax", "ajam"}),
    "ami": frozenset({"ami", "ajam"}),
    "ssh": frozenset({"ssh"}),
    "web": frozenset({"web"}),
    "recidive": frozenset({"*"}),
    "manual": frozenset({"*"}),
}

#: Repeat offenders: banned on every port when their bans pile up.
RECIDIVE_JAIL = "recidive"
#: Bans made by the administrator (CLI, REST, web, ban-list imports).
MANUAL_JAIL = "manual"
#: Jails that are not fed failures: recidive is derived from bans, manual from
#: the administrator.
DERIVED_JAILS = frozenset({RECIDIVE_JAIL, MANUAL_JAIL})


def validate_jail(jail: str, field: str = "jail") -> str:
    """``jail`` when it is a key of :data:`JAIL_SCOPES`; else a ValidationError naming them."""
    if jail not in JAIL_SCOPES:
        raise ValidationError(
            FieldError(field, f"unknown jail {jail!r}; use one of {', '.join(JAIL_SCOPES)}")
        )
    return jail
