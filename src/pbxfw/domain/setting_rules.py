"""The rules for a setting's value: bounds, parsers, checks, the field types.

What ``pbxfw.domain.settings.Settings`` builds its fields from, and the
messages it gives when a value breaks them. Pure: no I/O.

Bounds: ports 1–65535; ``ips_findtime`` at most 30 days; ``ips_bantime`` and
``ips_bantime_max`` (and any ban's length, see ``check_ban_seconds``) at most
10 years (``MAX_BAN_SECONDS``). Text settings never hold control characters
(NUL, newlines, escapes). Path settings are absolute; the file pbxfw *writes*
as root (``pjsip_include_path``) lies directly in ``asterisk_config_dir``
(``include_path_problem``; the writer checks the same rule again, and the file
itself, when it writes). The log_* settings follow ``LogSource`` (message:
``_LOG_RULE``).

The validators read the mode (text or strict, see ``pbxfw.domain.settings``)
from ``info.context``: only in text mode is text turned into a value.
"""

from __future__ import annotations

import ipaddress
import posixpath
import re
import unicodedata
from typing import Annotated

from pydantic import AfterValidator, BeforeValidator, Field, ValidationInfo

from pbxfw.domain.addresses import parse_subnet
from pbxfw.domain.logsource import is_journal, journal_source_problem
from pbxfw.errors import FieldError, ValidationError

__all__ = [
    "IPS_PRESETS",
    "MAX_BAN_SECONDS",
    "MAX_FINDTIME_SECONDS",
    "SHARE_MODES",
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
#: The values of ``ips_share`` (domain.sharing says what each means).
SHARE_MODES = ("fleet", "site", "off")

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


def _share(value: object) -> object:
    """``ips_share``: one of SHARE_MODES, in any case, spaces around ignored."""
    if isinstance(value, str) and value.strip().lower() in SHARE_MODES:
        return value.strip().lower()
    raise ValueError("give fleet, site or off")


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
WholeNumber = Annotated[int, BeforeValidator(_integer)]
AddressList = Annotated[list[str], BeforeValidator(_whitelist)]
PublicAddress = Annotated[str, AfterValidator(_address)]
PlainText = Annotated[str, AfterValidator(_plain_text)]
#: ``ips_share``: who else enforces a site's detected bans (domain.sharing).
ShareMode = Annotated[str, BeforeValidator(_share)]
#: The rule for the log_* settings (where each log source is read): an
#: absolute path, as any path setting, or a ``journal:`` source
#: (domain.logsource); its message is ``_LOG_RULE``.
LogSource = Annotated[str, AfterValidator(_log_source)]

PORT_RULE = "a port is a number from 1 to 65535"
_BAN_RULE = "a duration from 1 second to 10 years (3650d): seconds or e.g. 10m, 1h, 7d"
# The message for the log_* settings (their rule is ``LogSource``).
_LOG_RULE = (
    "an absolute path, e.g. /var/log/auth.log, or a journal source, e.g. "
    "journal:ssh.service or journal:SYSLOG_IDENTIFIER=sshd (empty: none)"
)
#: What each setting is, said when a value is of the wrong type or out of range.
RULES: dict[str, str] = {
    "firewall_enabled": "a switch: true or false",
    "ips_enabled": "a switch: true or false",
    "pjsip_reload": "a switch: true or false",
    "sip_notrack": "a switch: true or false",
    "cti_ports": "ports are numbers from 1 to 65535, separated by commas",
    "ips_maxretry": "a whole number of failures from 1 to 100000",
    "ips_findtime": "a duration from 1 second to 30 days (30d): seconds or e.g. 10m, 1h, 7d",
    "ips_bantime": _BAN_RULE,
    "ips_bantime_max": _BAN_RULE,
    "ips_whitelist": "addresses or CIDRs separated by commas",
    "sip_rate_limit": "packets per second: a whole number from 0 (off) to 1000000",
    "ips_share": "fleet (every site that shares fleet), site (this site's nodes) or off "
    "(the detecting node only)",
    "ips_evidence_days": "a whole number of days from 1 to 3650: how long a ban's log lines "
    "are kept (and an ended ban with them)",
    "log_asterisk_security": _LOG_RULE,
    "log_asterisk_messages": _LOG_RULE,
    "log_ssh": _LOG_RULE,
    "log_web": _LOG_RULE,
    "asterisk_config_dir": "an absolute path of a folder, e.g. /etc/asterisk (empty: none)",
    "external_address": "an IP address or a host name (empty: none)",
    "pjsip_include_path": "an absolute path in asterisk_config_dir, e.g. "
    "/etc/asterisk/pbxfw_pjsip_nat.conf (empty: none)",
}
DURATION_KEYS = frozenset({"ips_findtime", "ips_bantime", "ips_bantime_max"})
TEXT_SWITCH_RULE = "a switch: on or off (true/false, yes/no, 1/0)"
