"""Read the PBX's ports from Asterisk's own configuration (and sshd's).

``discover(config_dir)`` reads, in the folder Asterisk reads them from:

=============  =========================================  ==========================
file           what                                       setting
=============  =========================================  ==========================
pjsip.conf     first ``type=transport`` with protocol     ``sip_port``
               udp or tcp: the port of its ``bind``
pjsip.conf     first transport with protocol tls          ``tls_port``
rtp.conf       ``[general] rtpstart`` / ``rtpend``        ``rtp_port_from`` / ``_to``
http.conf      ``[general] bindport``                     ``ajam_port``
http.conf      ``tlsenable=yes`` + ``tlsbindaddr``'s port  ``ajam_tls_port``
manager.conf   ``[general] port``                         ``ami_port``
iax.conf       ``[general] bindport``                     ``iax_port``
sshd_config    the first ``Port``                         ``ssh_port``
=============  =========================================  ==========================

The rule for what is set: a setting changes only from a value written in
the files, or from Asterisk's default when a written value implies it (a
``bind`` without a port is 5060, or 5061 for TLS; ``tlsenable=yes`` without a
port in ``tlsbindaddr`` is 8089; one end of the RTP range without the other
takes Asterisk's default for the other end, 5000 or 31000). Nothing written
means the setting keeps its value: a missing file is noted, not an error.

Everything else worth knowing goes into ``notes`` (source file and line of
each value, further transports on other ports, ws/wss transports served by
the HTTP server, AMI over TLS): the CLI prints them. Nothing here changes
stored settings; the caller applies ``Discovery.changes(current)``.
"""

from __future__ import annotations

import glob
import os
import re
from dataclasses import dataclass, field
from pathlib import Path

from pbxfw.asterisk.conf import load_config
from pbxfw.asterisk.conf_model import AsteriskConfigError, Entry, Section, find_section
from pbxfw.domain.settings import Settings
from pbxfw.errors import ValidationError

__all__ = [
    "DEFAULT_CONFIG_DIR",
    "DEFAULT_SSHD_CONFIG",
    "Discovery",
    "discover",
    "split_host_port",
]

DEFAULT_CONFIG_DIR = Path("/etc/asterisk")
DEFAULT_SSHD_CONFIG = Path("/etc/ssh/sshd_config")

# Asterisk's compiled-in defaults, used only when a written value implies one.
_SIP_DEFAULT = 5060
_SIP_TLS_DEFAULT = 5061
_HTTP_TLS_DEFAULT = 8089
_RTP_DEFAULTS = (5000, 31000)  # res_rtp_asterisk DEFAULT_RTP_START / _END

_TRUE = frozenset({"yes", "true", "y", "t", "1", "on"})  # ast_true()


@dataclass(frozen=True, slots=True)
class Discovery:
    """What the Asterisk configuration says about the PBX's ports.

    ``settings`` holds only the settings found (key → port); ``sources``
    where each came from (``file:line``); ``notes`` sentences for a human.
    """

    settings: dict[str, int] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    sources: dict[str, str] = field(default_factory=dict)

    def changes(self, current: Settings) -> dict[str, int]:
        """The found settings whose value differs from ``current``.

        The result passes straight to ``Settings.updated``; it is validated
        against ``current`` here (e.g. an RTP range against the other end), so
        a ValidationError is raised before anything is stored.
        """
        diff = {k: v for k, v in self.settings.items() if getattr(current, k) != v}
        current.updated(diff)
        return diff

    def describe_changes(self, current: Settings) -> list[str]:
        """One line per setting that would change: ``sip_port: 5060 -> 5070 (pjsip.conf:3)``."""
        return [
            f"{key}: {getattr(current, key)} -> {value} ({self.sources.get(key, '?')})"
            for key, value in self.changes(current).items()
        ]


def discover(
    config_dir: Path = DEFAULT_CONFIG_DIR,
    sshd_config: Path | None = DEFAULT_SSHD_CONFIG,
) -> Discovery:
    """Read the ports from the Asterisk configuration in ``config_dir``.

    ``sshd_config`` is read for ``ssh_port`` when given and present (None
    skips it). Raises AsteriskConfigError, before anything could be applied,
    when the folder is missing or unreadable, when a file cannot be parsed,
    or when a value is not a valid port; the error names file and line.
    """
    _check_folder(config_dir)
    found = _Found(config_dir)
    _pjsip(found)
    _rtp(found)
    _http(found)
    _manager(found)
    _iax(found)
    if sshd_config is not None:
        _sshd(found, sshd_config)
    found.validate()
    return Discovery(dict(found.settings), list(found.notes), dict(found.sources))


# --------------------------------------------------------------------------


def _check_folder(config_dir: Path) -> None:
    if not config_dir.exists():
        raise AsteriskConfigError(
            "no such folder; give the Asterisk configuration folder with --config-dir",
            config_dir,
        )
    if not config_dir.is_dir():
        raise AsteriskConfigError("is not a folder", config_dir)
    try:
        next(config_dir.iterdir(), None)
    except OSError as exc:
        raise AsteriskConfigError(
            f"cannot read the folder: {exc.strerror or exc}; run as a user who can "
            "(root, or a member of the asterisk group)",
            config_dir,
        ) from None


class _Found:
    """Settings, sources and notes as the files are read."""

    def __init__(self, config_dir: Path) -> None:
        self.config_dir = config_dir
        self.settings: dict[str, int] = {}
        self.sources: dict[str, str] = {}
        self.entries: dict[str, Entry] = {}
        self.notes: list[str] = []

    def name(self, path: Path) -> str:
        """A path as the notes show it: relative to the folder when inside it."""
        try:
            return str(path.relative_to(self.config_dir))
        except ValueError:
            return str(path)

    def where(self, entry: Entry) -> str:
        return f"{self.name(entry.file)}:{entry.line}"

    def set(self, key: str, port: int, entry: Entry, how: str) -> None:
        self.settings[key] = port
        self.sources[key] = self.where(entry)
        self.entries[key] = entry
        self.notes.append(f"{key} = {port} from {self.where(entry)} ({how})")

    def note(self, text: str) -> None:
        self.notes.append(text)

    def load(self, filename: str) -> list[Section] | None:
        path = self.config_dir / filename
        if not path.exists():
            self.note(f"{filename}: not present; its settings keep their values")
            return None
        return load_config(filename, self.config_dir)

    def validate(self) -> None:
        try:
            Settings().updated(self.settings)
        except ValidationError as exc:
            first = exc.errors[0]
            message = first.message
            if first.field not in message:
                message = f"{first.field}: {message}"
            entry = self.entries.get(first.field)
            if entry is None:
                raise AsteriskConfigError(message, self.config_dir) from None
            raise AsteriskConfigError(message, entry.file, entry.line) from None


def _port(text: str, entry: Entry, found: _Found, what: str) -> int:
    if not re.fullmatch(r"\d{1,5}", text) or not 1 <= int(text) <= 65535:
        raise AsteriskConfigError(
            f"{entry.key} = {entry.value!r}: {what} {text!r} is not a port number (1-65535)",
            entry.file,
            entry.line,
        )
    return int(text)


def split_host_port(text: str) -> tuple[str, str | None]:
    """``host`` and ``port`` (None when absent) of a bind address.

    ``0.0.0.0:5060``, ``0.0.0.0``, ``[::]:5060``, ``[::]``, ``::`` (bare IPv6,
    no port), ``pbx.example.com:5060``. The port is returned as written.
    """
    text = text.strip()
    if text.startswith("["):
        close = text.find("]")
        if close < 0:
            return text, None
        rest = text[close + 1 :]
        return text[1:close], rest[1:] if rest.startswith(":") else None
    if text.count(":") == 1:
        host, port = text.split(":")
        return host, port
    return text, None


# -- pjsip.conf ------------------------------------------------------------


def _pjsip(found: _Found) -> None:
    sections = found.load("pjsip.conf")
    if sections is None:
        return
    transports = [
        s for s in sections if not s.template and (s.get("type") or "").lower() == "transport"
    ]
    if not transports:
        found.note("pjsip.conf: no type=transport section; sip_port and tls_port keep their values")
    first: dict[str, tuple[int, str]] = {}  # setting -> (port, transport name)
    for section in transports:
        protocol = (section.get("protocol") or "udp").strip().lower()
        label = f"{found.name(section.file)}:{section.line}: [{section.name}] ({protocol})"
        if protocol in ("ws", "wss"):
            found.note(
                f"{label} is served by Asterisk's HTTP server, on the "
                "ajam_port / ajam_tls_port of http.conf"
            )
            continue
        if protocol == "flow":
            continue
        if protocol not in ("udp", "tcp", "tls"):
            found.note(f"{label}: unknown protocol, ignored")
            continue
        bind = section.entry("bind")
        if bind is None or not bind.value:
            found.note(f"{label} has no bind; Asterisk does not start it")
            continue
        _, written = split_host_port(bind.value)
        default = _SIP_TLS_DEFAULT if protocol == "tls" else _SIP_DEFAULT
        port = default if written is None else _port(written, bind, found, "port")
        key = "tls_port" if protocol == "tls" else "sip_port"
        if key not in first:
            how = f"[{section.name}] {protocol} bind={bind.value}"
            if written is None:
                how += f", no port: Asterisk's default {default}"
            found.set(key, port, bind, how)
            first[key] = (port, section.name)
        elif first[key][0] == port:
            found.note(f"{label} bind={bind.value} also uses {key} {port}")
        else:
            found.note(
                f"{label} bind={bind.value} listens on port {port}, which "
                f"pbxfw does not open: {key} is {first[key][0]} from [{first[key][1]}]; "
                "add a custom service for it"
            )


# -- rtp.conf, http.conf, manager.conf, iax.conf ----------------------------


def _general(found: _Found, filename: str) -> Section | None:
    sections = found.load(filename)
    if sections is None:
        return None
    general = find_section(sections, "general")
    if general is None:
        found.note(f"{filename}: no [general] section; its settings keep their values")
        return None
    extra = [s for s in sections if not s.template and s.name.lower() == "general"][1:]
    for section in extra:
        found.note(
            f"{found.name(section.file)}:{section.line}: a second [general], which "
            "Asterisk ignores; so does pbxfw"
        )
    return general


def _rtp(found: _Found) -> None:
    general = _general(found, "rtp.conf")
    if general is None:
        return
    start, end = general.entry("rtpstart"), general.entry("rtpend")
    if start is None and end is None:
        found.note("rtp.conf: no rtpstart/rtpend; the RTP range keeps its value")
        return
    for key, entry, default in (
        ("rtp_port_from", start, _RTP_DEFAULTS[0]),
        ("rtp_port_to", end, _RTP_DEFAULTS[1]),
    ):
        if entry is not None:
            port = _port(entry.value, entry, found, "value")
            found.set(key, port, entry, f"{entry.key}={entry.value}")
        else:
            other = start or end
            assert other is not None
            found.settings[key] = default
            found.sources[key] = found.where(other)
            found.entries[key] = other
            found.note(
                f"{key} = {default}: rtp.conf sets only {other.key}, and Asterisk's "
                f"default for the other end is {default}"
            )


def _http(found: _Found) -> None:
    general = _general(found, "http.conf")
    if general is None:
        return
    enabled = (general.get("enabled") or "no").lower() in _TRUE
    if not enabled:
        found.note("http.conf: the HTTP server is not enabled (enabled=no); ports read anyway")
    bindport = general.entry("bindport")
    if bindport is not None:
        found.set(
            "ajam_port",
            _port(bindport.value, bindport, found, "value"),
            bindport,
            f"bindport={bindport.value}",
        )
    tlsenable = general.entry("tlsenable")
    if tlsenable is not None and tlsenable.value.lower() in _TRUE:
        address = general.entry("tlsbindaddr")
        written = split_host_port(address.value)[1] if address is not None else None
        if address is not None and written is not None:
            port = _port(written, address, found, "port")
            found.set("ajam_tls_port", port, address, f"tlsenable=yes, tlsbindaddr={address.value}")
        else:
            found.set(
                "ajam_tls_port",
                _HTTP_TLS_DEFAULT,
                address or tlsenable,
                f"tlsenable=yes, no port in tlsbindaddr: Asterisk's default {_HTTP_TLS_DEFAULT}",
            )


def _manager(found: _Found) -> None:
    general = _general(found, "manager.conf")
    if general is None:
        return
    port = general.entry("port")
    if port is not None:
        found.set("ami_port", _port(port.value, port, found, "value"), port, f"port={port.value}")
    tlsenable = general.get("tlsenable")
    if tlsenable is not None and tlsenable.lower() in _TRUE:
        address = general.get("tlsbindaddr") or ""
        tls_port = split_host_port(address)[1] or "5039"
        found.note(
            f"manager.conf: AMI over TLS listens on {tls_port}, which no setting covers; "
            "add a custom service for it"
        )


def _iax(found: _Found) -> None:
    general = _general(found, "iax.conf")
    if general is None:
        return
    bindport = general.entry("bindport")
    if bindport is not None:
        port = _port(bindport.value, bindport, found, "value")
        found.set("iax_port", port, bindport, f"bindport={bindport.value}")
    addresses = general.get_all("bindaddr")
    for address in addresses:
        written = split_host_port(address.value)[1]
        if written is None:
            continue
        port = _port(written, address, found, "port")
        if "iax_port" not in found.settings:
            found.set("iax_port", port, address, f"bindaddr={address.value}")
        elif found.settings["iax_port"] != port:
            found.note(
                f"iax.conf: bindaddr={address.value} at {found.where(address)} listens on "
                f"{port}, which pbxfw does not open; add a custom service for it"
            )


# -- sshd_config -----------------------------------------------------------


def _sshd(found: _Found, path: Path) -> None:
    if not path.exists():
        found.note(f"{path}: not present; ssh_port keeps its value")
        return
    ports: list[Entry] = []
    _sshd_file(path, path.parent, ports, [])
    if not ports:
        found.note(f"{path}: no Port line; sshd listens on 22 unless told otherwise")
        return
    first = ports[0]
    found.set("ssh_port", _port(first.value, first, found, "Port"), first, f"Port {first.value}")
    for other in ports[1:]:
        if other.value != first.value:
            found.note(
                f"{other.file}:{other.line}: sshd also listens on {other.value}, which "
                "pbxfw does not open; add a custom service for it"
            )


def _sshd_file(path: Path, base: Path, ports: list[Entry], stack: list[Path]) -> None:
    """Collect ``Port`` lines in order, following ``Include`` (as sshd does)."""
    resolved = path.resolve()
    if resolved in stack:
        raise AsteriskConfigError("Include cycle in the sshd configuration", path)
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError as exc:
        raise AsteriskConfigError(f"cannot read: {exc.strerror or exc}", path) from None
    in_match = False
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        match = re.match(r"(\w+)\s*(?:=\s*|\s+)(.*)$", line)
        if match is None:
            continue
        keyword, value = match.group(1).lower(), match.group(2).strip().strip('"')
        if keyword == "match":
            in_match = True  # Port is not allowed in Match blocks
        elif keyword == "port" and not in_match:
            ports.append(Entry("Port", value, path, number))
        elif keyword == "include":
            for pattern in value.split():
                full = pattern if os.path.isabs(pattern) else str(base / pattern)
                for name in sorted(glob.glob(full)):
                    _sshd_file(Path(name), base, ports, [*stack, resolved])
