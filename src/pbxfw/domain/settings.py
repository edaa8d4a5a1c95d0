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

Bounds: ports 1–65535; ``ips_findtime`` at most 30 days; ``ips_bantime`` and
``ips_bantime_max`` (and any ban's length, see ``check_ban_seconds``) at most
10 years (``MAX_BAN_SECONDS``). Text settings never hold control characters
(NUL, newlines, escapes). Path settings are absolute (log settings may name
journal entries instead: ``journal:ssh.service``, domain.logsource); the file pbxfw *writes*
as root (``pjsip_include_path``) lies directly in ``asterisk_config_dir``
(``include_path_problem``; the writer checks the same rule again, and the file
itself, when it writes).
"""

from __future__ import annotations

import ipaddress
import posixpath
import re
import unicodedata
from collections.abc import Mapping
from typing import Annotated, Any

import pydantic
from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationInfo,
    model_validator,
)
from pydantic_core import PydanticCustomError

from pbxfw.domain.addresses import parse_subnet
from pbxfw.domain.logsource import is_journal, journal_source_problem
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

#: The longest ban, and the longest ``ips_bantime`` / ``ips_bantime_max``:
#: 10 years (3650 days). The kernel holds it (nft takes ``3650d``), a
#: datetime shows it, and no attacker needs more.
MAX_BAN_SECONDS = 3650 * 86400
#: The longest detection window (``ips_findtime``): 30 days.
MAX_FINDTIME_SECONDS = 30 * 86400

# Twelve digits at most: a longer number is never a duration worth parsing
# (and 10**4300 digits would make int() itself refuse).
_DURATION = re.compile(r"^\s*(\d{1,12})\s*([smhdw]?)\s*$", re.IGNORECASE)
_UNITS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
_INTEGER = re.compile(r"^\s*(-?\d{1,12})\s*$")
_TRUE = frozenset({"true", "on", "yes", "1"})
_FALSE = frozenset({"false", "off", "no", "0"})
_HOSTNAME = re.compile(
    r"^(?=.{1,253}$)[A-Za-z0-9](?:[A-Za-z0-9-]{0,62}[A-Za-z0-9])?"
    r"(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,62}[A-Za-z0-9])?)*\.?$"
)
# Control (Cc), format/invisible (Cf), lone surrogates (Cs: no file system
# can take them), line and paragraph separators (Zl, Zp).
_UNPRINTABLE = frozenset({"Cc", "Cf", "Cs", "Zl", "Zp"})
_PATH_MAX = 4095  # bytes, Linux PATH_MAX less the NUL
_NAME_MAX = 255  # bytes of one path component

#: maxretry, findtime, bantime for each preset of DESIGN §4.
IPS_PRESETS: dict[str, dict[str, int]] = {
    "weak": {"ips_maxretry": 20, "ips_findtime": 600, "ips_bantime": 600},
    "normal": {"ips_maxretry": 10, "ips_findtime": 3600, "ips_bantime": 86400},
    "enhanced": {"ips_maxretry": 5, "ips_findtime": 6 * 3600, "ips_bantime": 7 * 86400},
    "paranoid": {"ips_maxretry": 3, "ips_findtime": 86400, "ips_bantime": 30 * 86400},
}


def parse_duration(value: object) -> int:
    """Seconds from an int or text such as ``3600``, ``10m``, ``1h``, ``30d``.

    Bounds are the caller's (each setting has its own); a boolean is refused.
    """
    if isinstance(value, bool):
        raise ValueError("a duration is a number of seconds or e.g. 10m, 1h, 7d")
    if isinstance(value, int):
        return value
    if isinstance(value, str):
        match = _DURATION.match(value)
        if match:
            return int(match.group(1)) * _UNITS[match.group(2).lower()]
    raise ValueError("not a duration: give seconds or e.g. 90s, 10m, 1h, 7d")


def check_ban_seconds(seconds: object, field: str = "seconds") -> int:
    """A ban's length in seconds, checked: an integer from 1 to MAX_BAN_SECONDS.

    The one rule for a ban's length, whatever asks for the ban (CLI, REST,
    web page, import). Raises ValidationError naming ``field``.
    """
    if isinstance(seconds, bool) or not isinstance(seconds, int):
        raise ValidationError(FieldError(field, "a ban's length is a whole number of seconds"))
    if not 1 <= seconds <= MAX_BAN_SECONDS:
        raise ValidationError(
            FieldError(
                field,
                f"{seconds}: a ban lasts from 1 second to 10 years ({MAX_BAN_SECONDS} s)",
            )
        )
    return seconds


def text_problem(value: str) -> str | None:
    """Why ``value`` cannot be a text setting (a control or invisible
    character), or None."""
    for char in value:
        if unicodedata.category(char) in _UNPRINTABLE:
            return f"contains U+{ord(char):04X}, a control or invisible character; type it without"
    return None


def _path_problem(value: str) -> str | None:
    """Why ``value`` cannot be a path setting, or None (``""`` means none)."""
    if value == "":
        return None
    problem = text_problem(value)
    if problem:
        return problem
    if not value.startswith("/"):
        return "give an absolute path, starting with /"
    if len(value.encode()) > _PATH_MAX:
        return f"a path is at most {_PATH_MAX} bytes long"
    if any(len(part.encode()) > _NAME_MAX for part in value.split("/")):
        return f"each part of a path is at most {_NAME_MAX} bytes long"
    return None


def include_path_problem(path: str, config_dir: str) -> str | None:
    """Why pbxfw may not write the PJSIP include at ``path``, or None.

    The rule for every file pbxfw writes as root: an absolute, plainly
    written path (no ``.`` or ``..`` parts, no doubled or trailing ``/``) of
    a visible ``.conf`` file directly in the Asterisk configuration folder
    ``config_dir``. Pure: what is on disk (a symlink, a file pbxfw did not
    write) is the writer's check.
    """
    problem = _path_problem(path)
    if problem:
        return problem
    folder = posixpath.normpath(config_dir) if config_dir else ""
    if not folder or _path_problem(folder):
        return "set asterisk_config_dir first: the include is written only in that folder"
    if posixpath.normpath(path) != path or path.startswith("//"):
        return "write the path plainly, without . or .. parts or doubled /"
    name = posixpath.basename(path)
    if posixpath.dirname(path) != folder:
        return (
            f"pbxfw writes only directly in asterisk_config_dir ({folder}); "
            f"e.g. {posixpath.join(folder, 'pbxfw_pjsip_nat.conf')}"
        )
    if name.startswith(".") or not name.endswith(".conf") or name == ".conf":
        return f"the include is a .conf file, e.g. {posixpath.join(folder, 'pbxfw_pjsip_nat.conf')}"
    return None


def external_address_problem(value: str) -> str | None:
    """Why ``value`` cannot be the PBX's public address, or None (empty: none)."""
    value = value.strip()
    if not value:
        return None
    try:
        ipaddress.ip_address(value.strip("[]"))
        return None
    except ValueError:
        pass
    if _HOSTNAME.match(value):
        return None
    return "neither an IP address nor a host name; give the PBX's public address, e.g. 203.0.113.5"


# -- the validators, each given the mode in ``info.context`` ----------------------


def _text_mode(info: ValidationInfo) -> bool:
    return bool(info.context and info.context.get("text"))


def _switch(value: object, info: ValidationInfo) -> object:
    if isinstance(value, str) and _text_mode(info):
        word = value.strip().lower()
        if word in _TRUE:
            return True
        if word in _FALSE:
            return False
    return value  # strict bool check: anything else is refused


def _integer(value: object, info: ValidationInfo) -> object:
    if isinstance(value, str) and _text_mode(info):
        match = _INTEGER.match(value)
        if match:
            return int(match.group(1))
    return value  # strict int check: no bool, no float, no other text


def _port_list(value: object, info: ValidationInfo) -> object:
    if isinstance(value, str):
        items: list[object] = []
        for item in (part.strip() for part in value.split(",")):
            if not item:
                continue
            match = _INTEGER.match(item)
            items.append(int(match.group(1)) if match else item)
        return items
    if isinstance(value, list) and _text_mode(info):
        return [_integer(item, info) for item in value]
    return value


def _whitelist(value: object) -> list[str]:
    if isinstance(value, str):
        value = [item.strip() for item in value.split(",") if item.strip()]
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        raise ValueError("give addresses or CIDRs separated by commas")
    result = []
    for item in value:
        problem = text_problem(item)
        if problem:
            raise ValueError(problem)
        try:
            result.append(str(parse_subnet(item, "ips_whitelist")))
        except ValidationError as exc:
            raise ValueError(exc.errors[0].message) from None
    return result


def _duration(value: object) -> int:
    return parse_duration(value)  # its bounds are the field's; errors say the rule


def _path(value: str) -> str:
    problem = _path_problem(value)
    if problem:
        raise ValueError(problem)
    return value


def _log_source(value: str) -> str:
    """A log setting: a path (as ``_path``) or a ``journal:`` source (domain.logsource)."""
    problem = (
        text_problem(value) or journal_source_problem(value)
        if is_journal(value)
        else _path_problem(value)
    )
    if problem:
        raise ValueError(problem)
    return value


def _plain_text(value: str) -> str:
    problem = text_problem(value)
    if problem:
        raise ValueError(problem)
    return value


def _address(value: str) -> str:
    problem = text_problem(value) or external_address_problem(value)
    if problem:
        raise ValueError(problem)
    return value.strip()


Switch = Annotated[bool, BeforeValidator(_switch)]
Port = Annotated[int, BeforeValidator(_integer), Field(ge=1, le=65535)]
Ports = Annotated[list[Port], BeforeValidator(_port_list)]
BanLength = Annotated[int, BeforeValidator(_duration), Field(ge=1, le=MAX_BAN_SECONDS)]
Window = Annotated[int, BeforeValidator(_duration), Field(ge=1, le=MAX_FINDTIME_SECONDS)]
PathSetting = Annotated[str, AfterValidator(_path)]
LogSetting = Annotated[str, AfterValidator(_log_source)]

_PORT_RULE = "a port is a number from 1 to 65535"
_BAN_RULE = "a duration from 1 second to 10 years (3650d): seconds or e.g. 10m, 1h, 7d"
_LOG_RULE = (
    "an absolute path, e.g. /var/log/auth.log, or a journal source, e.g. "
    "journal:ssh.service or journal:SYSLOG_IDENTIFIER=sshd (empty: none)"
)
#: What each setting is, said when a value is of the wrong type or out of range.
_RULES: dict[str, str] = {
    "firewall_enabled": "a switch: true or false",
    "ips_enabled": "a switch: true or false",
    "pjsip_reload": "a switch: true or false",
    "cti_ports": "ports are numbers from 1 to 65535, separated by commas",
    "ips_maxretry": "a whole number of failures from 1 to 100000",
    "ips_findtime": "a duration from 1 second to 30 days (30d): seconds or e.g. 10m, 1h, 7d",
    "ips_bantime": _BAN_RULE,
    "ips_bantime_max": _BAN_RULE,
    "ips_whitelist": "addresses or CIDRs separated by commas",
    "sip_rate_limit": "packets per second: a whole number from 0 (off) to 1000000",
    "log_asterisk_security": _LOG_RULE,
    "log_asterisk_messages": _LOG_RULE,
    "log_ssh": _LOG_RULE,
    "log_web": _LOG_RULE,
    "asterisk_config_dir": "an absolute path of a folder, e.g. /etc/asterisk (empty: none)",
    "external_address": "an IP address or a host name (empty: none)",
    "pjsip_include_path": "an absolute path in asterisk_config_dir, e.g. "
    "/etc/asterisk/pbxfw_pjsip_nat.conf (empty: none)",
}
_DURATION_KEYS = frozenset({"ips_findtime", "ips_bantime", "ips_bantime_max"})
_TEXT_SWITCH_RULE = "a switch: on or off (true/false, yes/no, 1/0)"


class Settings(BaseModel):
    """Every setting with its default (DESIGN §2, Settings)."""

    # strict: validators above turn text into values only in text mode; what
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

    ips_maxretry: Annotated[int, BeforeValidator(_integer), Field(ge=1, le=100000)] = 10
    ips_findtime: Window = 3600
    ips_bantime: BanLength = 86400
    ips_bantime_max: BanLength = 30 * 86400
    ips_whitelist: Annotated[list[str], BeforeValidator(_whitelist)] = []

    sip_rate_limit: Annotated[int, BeforeValidator(_integer), Field(ge=0, le=1_000_000)] = 0

    log_asterisk_security: LogSetting = "/var/log/asterisk/security_log"
    log_asterisk_messages: LogSetting = "/var/log/asterisk/messages"
    log_ssh: LogSetting = "/var/log/auth.log"
    log_web: LogSetting = "/var/log/nginx/error.log"

    #: Asterisk integration: where its configuration lives, the public address
    #: to announce (empty: none), the PJSIP include to write (empty: none).
    asterisk_config_dir: PathSetting = "/etc/asterisk"
    external_address: Annotated[str, AfterValidator(_address)] = ""
    pjsip_include_path: Annotated[str, AfterValidator(_plain_text)] = ""
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
        if err["type"] == "value_error" and field not in _DURATION_KEYS:
            message = str(err["msg"]).removeprefix("Value error, ")
        elif field in ("firewall_enabled", "ips_enabled", "pjsip_reload") and not strict:
            message = _TEXT_SWITCH_RULE
        else:
            message = _RULES.get(
                field, _PORT_RULE if field.endswith(("_port", "_to", "_from")) else str(err["msg"])
            )
        if field in changes:
            message = f"{_shown(changes[field])}: {message}"
        if not any(e.field == field for e in errors):  # one message per setting
            errors.append(FieldError(field, message))
    return errors


SETTINGS_KEYS: tuple[str, ...] = tuple(Settings.model_fields)
