"""Settings: the PBX's ports, the switches, intrusion-prevention parameters, paths.

One validated, immutable ``Settings`` object. Every entry point (CLI
``settings set KEY=VALUE``, REST ``PATCH /api/v1/settings``, the web page,
import) goes through ``Settings.updated``, so a value is checked in one place,
and the rules of this module are the whole of what a stored setting may be.

Two ways values come in:

* **strict** (``strict=True``: the REST API and configuration documents, which
  are JSON): each value has its JSON type. A switch is ``true``/``false`` (never
  ``"on"``, never ``1``); a number is a JSON integer (never a boolean, never a
  float); text is a string. Two documented text forms remain: a duration may be
  given as text (``"10m"``), a list as comma-separated text (``"4222,8000"``).
* **text** (the default: the CLI, the web forms, Python callers): a value of
  the right type, or text to parse: switches ``true/false/on/off/yes/no/1/0``,
  integers in digits, durations (``3600``, ``90s``, ``10m``, ``1h``, ``7d``),
  comma-separated lists.

In both, a boolean is never a number, a number never a switch.

The value rules (bounds, parsers, the field types, each setting's message)
live in ``pbxfw.domain.setting_rules``; this module holds the model, its
defaults, the rules *between* settings and how pydantic's errors become
messages naming the setting. Its public names are re-exported here.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated, Any

import pydantic
from pydantic import BaseModel, ConfigDict, Field, model_validator
from pydantic_core import PydanticCustomError

from pbxfw.domain.setting_rules import (
    DURATION_KEYS,
    IPS_PRESETS,
    MAX_BAN_SECONDS,
    MAX_FINDTIME_SECONDS,
    PORT_RULE,
    RULES,
    TEXT_SWITCH_RULE,
    AddressList,
    BanLength,
    LogSource,
    PathSetting,
    PlainText,
    Port,
    Ports,
    PublicAddress,
    ShareMode,
    Switch,
    WholeNumber,
    Window,
    check_ban_seconds,
    external_address_problem,
    include_path_problem,
    parse_duration,
    text_problem,
)
from pbxfw.errors import FieldError, ValidationError

__all__ = [
    "IPS_PRESETS",
    "MAX_BAN_SECONDS",
    "MAX_FINDTIME_SECONDS",
    "SETTINGS_KEYS",
    "Settings",
    "check_ban_seconds",
    "external_address_problem",
    "include_path_problem",
    "parse_duration",
    "text_problem",
]


class Settings(BaseModel):
    """Every setting with its default (DESIGN §2, Settings)."""

    # strict: the validators (setting_rules) turn text into values only in text mode; what
    # reaches the type checks must already have its type.
    model_config = ConfigDict(frozen=True, extra="forbid", strict=True)

    firewall_enabled: Switch = False
    ips_enabled: Switch = True

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
    cti_ports: Ports = [4222, 8222, 8000]

    ips_maxretry: Annotated[WholeNumber, Field(ge=1, le=100000)] = 10
    ips_findtime: Window = 3600
    ips_bantime: BanLength = 86400
    ips_bantime_max: BanLength = 30 * 86400
    ips_whitelist: AddressList = []

    sip_rate_limit: Annotated[WholeNumber, Field(ge=0, le=1_000_000)] = 0
    #: conntrack flood protection (issue 18, docs/nftables.md): with the firewall
    #: on, UDP SIP/RTP of sources the allow sets accept is not tracked (off by
    #: default: it costs each allowed SIP/RTP packet more CPU; docs/nftables.md)
    sip_notrack: Switch = False
    #: who else enforces the bans this site's nodes detect (domain.sharing)
    ips_share: ShareMode = "fleet"
    #: days a ban's evidence (its log lines) is kept, and an ended ban with it
    ips_evidence_days: Annotated[WholeNumber, Field(ge=1, le=3650)] = 30

    log_asterisk_security: LogSource = "/var/log/asterisk/security_log"
    log_asterisk_messages: LogSource = "/var/log/asterisk/messages"
    log_ssh: LogSource = "/var/log/auth.log"
    log_web: LogSource = "/var/log/nginx/error.log"

    #: Asterisk integration: where its configuration lives, the public address
    #: to announce (empty: none), the PJSIP include to write (empty: none).
    asterisk_config_dir: PathSetting = "/etc/asterisk"
    external_address: PublicAddress = ""
    pjsip_include_path: PlainText = ""
    pjsip_reload: Switch = False

    @model_validator(mode="after")
    def _together(self) -> Settings:
        if self.rtp_port_from > self.rtp_port_to:
            raise _rule(
                "rtp_port_from",
                f"rtp_port_from ({self.rtp_port_from}) is above rtp_port_to "
                f"({self.rtp_port_to}); the RTP range must run from low to high",
            )
        if self.ips_bantime > self.ips_bantime_max:
            raise _rule(
                "ips_bantime",
                f"ips_bantime ({self.ips_bantime}) is above ips_bantime_max "
                f"({self.ips_bantime_max}); raise ips_bantime_max first",
            )
        if self.pjsip_include_path:
            problem = include_path_problem(self.pjsip_include_path, self.asterisk_config_dir)
            if problem:
                raise _rule("pjsip_include_path", problem)
        return self

    @classmethod
    def from_mapping(cls, values: Mapping[str, Any], *, strict: bool = False) -> Settings:
        """Validate a whole mapping (unknown keys are refused)."""
        return Settings().updated(values, strict=strict)

    @classmethod
    def from_stored(cls, values: Mapping[str, Any]) -> tuple[Settings, list[FieldError]]:
        """The settings of stored ``values``; those no longer valid are left out.

        A value stored by an older pbxfw may break a rule added since (a
        PJSIP include outside the Asterisk folder, a ban of a thousand
        years). Reading never fails on it: such a value takes its default
        and is reported in the list returned, so the caller can say so.
        """
        defaults = Settings().model_dump()
        kept: dict[str, Any] = {}
        dropped: list[FieldError] = []
        for key, value in values.items():
            if key not in defaults:
                continue
            try:
                Settings.model_validate({**defaults, key: value})
            except pydantic.ValidationError as exc:
                if any(err["loc"] for err in exc.errors()):
                    dropped.append(FieldError(key, f"stored value {_shown(value)} ignored"))
                    continue
            kept[key] = value
        # Rules between settings: leave out the pair that breaks one (the
        # defaults keep every rule, so this ends within three rounds).
        pairs = {
            "rtp_port_from": ("rtp_port_from", "rtp_port_to"),
            "ips_bantime": ("ips_bantime", "ips_bantime_max"),
            "pjsip_include_path": ("pjsip_include_path",),
        }
        while True:
            try:
                return Settings.model_validate({**defaults, **kept}), dropped
            except pydantic.ValidationError as exc:
                field = _rule_field(exc.errors()[0]) or ""
                culprits = [k for k in pairs.get(field, tuple(kept)) if k in kept] or list(kept)
                for key in culprits:
                    dropped.append(FieldError(key, f"stored value {_shown(kept[key])} ignored"))
                    del kept[key]

    def updated(self, changes: Mapping[str, Any], *, strict: bool = False) -> Settings:
        """A new Settings with ``changes`` applied, all validated together.

        ``strict``: values must have their JSON types (see the module
        docstring); otherwise text is parsed too. ``ips_preset=<name>``
        expands to that preset's three values. Raises ValidationError naming
        each bad key and the rule.
        """
        changes = dict(changes)
        preset = changes.pop("ips_preset", None)
        if preset is not None:
            if not isinstance(preset, str) or preset.strip() not in IPS_PRESETS:
                raise ValidationError(
                    FieldError(
                        "ips_preset",
                        f"unknown preset {_shown(preset)}; use one of " + ", ".join(IPS_PRESETS),
                    )
                )
            changes = {**IPS_PRESETS[preset.strip()], **changes}
        unknown = sorted(str(k) for k in set(changes) - set(SETTINGS_KEYS))
        if unknown:
            raise ValidationError(
                [FieldError(str(k), "unknown setting; see `pbxfw settings show`") for k in unknown]
            )
        merged = {**self.model_dump(), **changes}
        try:
            return Settings.model_validate(merged, context={"text": not strict})
        except pydantic.ValidationError as exc:
            raise ValidationError(_field_errors(exc, changes, strict)) from None

    def as_text(self, key: str) -> str:
        """The value of ``key`` as a user types it (lists comma-separated)."""
        value = getattr(self, key)
        if isinstance(value, bool):
            return "true" if value else "false"
        if isinstance(value, list):
            return ",".join(str(v) for v in value)
        return str(value)


def _rule(field: str, message: str) -> PydanticCustomError:
    """A rule between settings, naming the setting to change."""
    return PydanticCustomError("settings_rule", "{message}", {"field": field, "message": message})


def _rule_field(err: Any) -> str | None:
    ctx = err.get("ctx") or {}
    return ctx.get("field") if err["type"] == "settings_rule" else None


def _shown(value: object) -> str:
    """``value`` as it appears in a message: its repr, control characters
    escaped, cut to a readable length."""
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _field_errors(
    exc: pydantic.ValidationError, changes: Mapping[str, Any], strict: bool
) -> list[FieldError]:
    errors: list[FieldError] = []
    for err in exc.errors():
        loc = [str(part) for part in err["loc"]]
        if not loc:
            field = _rule_field(err) or "settings"
            message = str((err.get("ctx") or {}).get("message", err["msg"]))
            # The include left behind by a new asterisk_config_dir: name what was changed.
            if (
                field == "pjsip_include_path"
                and field not in changes
                and "asterisk_config_dir" in changes
            ):
                field = "asterisk_config_dir"
                message += "; change pjsip_include_path with it, or clear it first"
            errors.append(FieldError(field, message))
            continue
        field = loc[0]
        if err["type"] == "value_error" and field not in DURATION_KEYS:
            message = str(err["msg"]).removeprefix("Value error, ")
        elif (
            field in ("firewall_enabled", "ips_enabled", "pjsip_reload", "sip_notrack")
            and not strict
        ):
            message = TEXT_SWITCH_RULE
        else:
            message = RULES.get(
                field, PORT_RULE if field.endswith(("_port", "_to", "_from")) else str(err["msg"])
            )
        if field in changes:
            message = f"{_shown(changes[field])}: {message}"
        if not any(e.field == field for e in errors):  # one message per setting
            errors.append(FieldError(field, message))
    return errors


SETTINGS_KEYS: tuple[str, ...] = tuple(Settings.model_fields)
