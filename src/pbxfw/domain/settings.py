"""Settings: the PBX's ports, the switches, intrusion-prevention parameters, log paths.

One validated, immutable ``Settings`` object. Every entry point (CLI
``settings set KEY=VALUE``, REST ``PATCH /api/v1/settings``, import) goes
through ``Settings.updated``, so a value is checked in one place. Values given
as text are parsed: booleans (true/false/on/off/yes/no/1/0), durations
(``3600``, ``90s``, ``10m``, ``1h``, ``7d``), comma-separated lists.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Annotated, Any

import pydantic
from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, model_validator

from pbxfw.domain.addresses import parse_subnet
from pbxfw.errors import FieldError, ValidationError

__all__ = [
    "IPS_PRESETS",
    "SETTINGS_KEYS",
    "Settings",
    "parse_duration",
]

_DURATION = re.compile(r"^\s*(\d+)\s*([smhdw]?)\s*$", re.IGNORECASE)
_UNITS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}

#: maxretry, findtime, bantime for each preset of DESIGN §4.
IPS_PRESETS: dict[str, dict[str, int]] = {
    "weak": {"ips_maxretry": 20, "ips_findtime": 600, "ips_bantime": 600},
    "normal": {"ips_maxretry": 10, "ips_findtime": 3600, "ips_bantime": 86400},
    "enhanced": {"ips_maxretry": 5, "ips_findtime": 6 * 3600, "ips_bantime": 7 * 86400},
    "paranoid": {"ips_maxretry": 3, "ips_findtime": 86400, "ips_bantime": 30 * 86400},
}


def parse_duration(value: object) -> int:
    """Seconds from an int or text such as ``3600``, ``10m``, ``1h``, ``30d``."""
    if isinstance(value, bool):
        raise ValueError("a duration is a number of seconds or e.g. 10m, 1h, 7d")
    if isinstance(value, int):
        return value
    if isinstance(value, str):
        match = _DURATION.match(value)
        if match:
            return int(match.group(1)) * _UNITS[match.group(2).lower()]
    raise ValueError(f"{value!r} is not a duration: give seconds or e.g. 90s, 10m, 1h, 7d")


def _comma_list(value: object) -> object:
    if isinstance(value, str):
        return [item.strip() for item in value.split(",") if item.strip()]
    return value


def _whitelist(value: object) -> list[str]:
    items = _comma_list(value)
    if not isinstance(items, list):
        raise ValueError("give addresses or CIDRs separated by commas")
    result = []
    for item in items:
        try:
            result.append(str(parse_subnet(str(item), "ips_whitelist")))
        except ValidationError as exc:
            raise ValueError(exc.errors[0].message) from None
    return result


Port = Annotated[int, Field(ge=1, le=65535)]
Duration = Annotated[int, BeforeValidator(parse_duration), Field(ge=1)]


class Settings(BaseModel):
    """Every setting with its default (DESIGN §2, Settings)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    firewall_enabled: bool = False
    ips_enabled: bool = True

    sip_port: Port = 5060
    tls_port: Port = 5061
    rtp_port_from: Port = 10000
    rtp_port_to: Port = 10800
    iax_port: Port = 4569
    web_port: Port = 80
    web_https_port: Port = 443
    ssh_port: Port = 22
    ami_port: Port = 5038
    ajam_port: Port = 8088
    ajam_tls_port: Port = 8089
    cti_ports: Annotated[list[Port], BeforeValidator(_comma_list)] = [4222, 8222, 8000]

    ips_maxretry: Annotated[int, Field(ge=1, le=100000)] = 10
    ips_findtime: Duration = 3600
    ips_bantime: Duration = 86400
    ips_bantime_max: Duration = 30 * 86400
    ips_whitelist: Annotated[list[str], BeforeValidator(_whitelist)] = []

    sip_rate_limit: Annotated[int, Field(ge=0, le=1_000_000)] = 0

    log_asterisk_security: str = "/var/log/asterisk/security_log"
    log_asterisk_messages: str = "/var/log/asterisk/messages"
    log_ssh: str = "/var/log/auth.log"
    log_web: str = "/var/log/nginx/error.log"

    #: Asterisk integration: where its configuration lives, the public address
    #: to announce (empty: none), the PJSIP include to write (empty: none).
    asterisk_config_dir: str = "/etc/asterisk"
    external_address: str = ""
    pjsip_include_path: str = ""
    pjsip_reload: bool = False

    @model_validator(mode="after")
    def _ranges(self) -> Settings:
        if self.rtp_port_from > self.rtp_port_to:
            raise ValueError(
                f"rtp_port_from ({self.rtp_port_from}) is above rtp_port_to "
                f"({self.rtp_port_to}); the RTP range must run from low to high"
            )
        if self.ips_bantime > self.ips_bantime_max:
            raise ValueError(
                f"ips_bantime ({self.ips_bantime}) is above ips_bantime_max "
                f"({self.ips_bantime_max}); raise ips_bantime_max first"
            )
        return self

    @classmethod
    def from_mapping(cls, values: Mapping[str, Any]) -> Settings:
        """Validate a whole mapping (unknown keys are refused)."""
        return Settings().updated(values)

    def updated(self, changes: Mapping[str, Any]) -> Settings:
        """A new Settings with ``changes`` applied, all validated together.

        ``ips_preset=<name>`` expands to that preset's three values. Raises
        ValidationError naming each bad key and the fix.
        """
        changes = dict(changes)
        preset = changes.pop("ips_preset", None)
        if preset is not None:
            if not isinstance(preset, str) or preset not in IPS_PRESETS:
                raise ValidationError(
                    FieldError(
                        "ips_preset",
                        f"unknown preset {preset!r}; use one of " + ", ".join(IPS_PRESETS),
                    )
                )
            changes = {**IPS_PRESETS[preset], **changes}
        unknown = sorted(set(changes) - set(SETTINGS_KEYS))
        if unknown:
            raise ValidationError(
                [FieldError(k, "unknown setting; see `pbxfw settings show`") for k in unknown]
            )
        merged = {**self.model_dump(), **changes}
        try:
            return Settings.model_validate(merged)
        except pydantic.ValidationError as exc:
            raise ValidationError(_field_errors(exc, changes)) from None

    def as_text(self, key: str) -> str:
        """The value of ``key`` as a user types it (lists comma-separated)."""
        value = getattr(self, key)
        if isinstance(value, bool):
            return "true" if value else "false"
        if isinstance(value, list):
            return ",".join(str(v) for v in value)
        return str(value)


def _field_errors(exc: pydantic.ValidationError, changes: Mapping[str, Any]) -> list[FieldError]:
    errors = []
    for err in exc.errors():
        loc = [str(part) for part in err["loc"]]
        message = str(err["msg"]).removeprefix("Value error, ")
        if loc:
            field = loc[0]
            if err["type"] in ("greater_than_equal", "less_than_equal") and field.endswith(
                ("_port", "_ports", "_port_from", "_port_to")
            ):
                message = "a port is a number from 1 to 65535"
            given = changes.get(field, None)
            if given is not None and not message.startswith(repr(given)):
                message = f"{given!r}: {message}"
        else:
            field = next((k for k in ("rtp_port_from", "ips_bantime") if k in message), "settings")
        errors.append(FieldError(field, message))
    return errors


SETTINGS_KEYS: tuple[str, ...] = tuple(Settings.model_fields)
