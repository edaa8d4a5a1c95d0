"""One reader per file ``discover`` reads: pjsip.conf, rtp.conf, http.conf,
manager.conf, iax.conf, sshd_config.

Each reads its file through ``Found.load`` (or, for sshd, itself) and sets
the ports it finds on ``Found``, with a note for everything else worth
knowing. The table of what comes from where is in ``pbxfw.asterisk.discover``.
"""

from __future__ import annotations

import glob
import os
import re
from pathlib import Path

from pbxfw.asterisk.conf_model import AsteriskConfigError, Entry, Section, find_section
from pbxfw.asterisk.discover_found import Found, port_number, split_host_port

__all__ = ["read_http", "read_iax", "read_manager", "read_pjsip", "read_rtp", "read_sshd"]

# Asterisk's compiled-in defaults, used only when a written value implies one.
_SIP_DEFAULT = 5060
_SIP_TLS_DEFAULT = 5061
_HTTP_TLS_DEFAULT = 8089
_RTP_DEFAULTS = (5000, 31000)  # res_rtp_asterisk DEFAULT_RTP_START / _END

_TRUE = frozenset({"yes", "true", "y", "t", "1", "on"})  # ast_true()


# -- pjsip.conf ------------------------------------------------------------


def read_pjsip(found: Found) -> None:
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
        port = default if written is None else port_number(written, bind, found, "port")
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


def _general(found: Found, filename: str) -> Section | None:
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


def read_rtp(found: Found) -> None:
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
            port = port_number(entry.value, entry, found, "value")
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


def read_http(found: Found) -> None:
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
            port_number(bindport.value, bindport, found, "value"),
            bindport,
            f"bindport={bindport.value}",
        )
    tlsenable = general.entry("tlsenable")
    if tlsenable is not None and tlsenable.value.lower() in _TRUE:
        address = general.entry("tlsbindaddr")
        written = split_host_port(address.value)[1] if address is not None else None
        if address is not None and written is not None:
            port = port_number(written, address, found, "port")
            found.set("ajam_tls_port", port, address, f"tlsenable=yes, tlsbindaddr={address.value}")
        else:
            found.set(
                "ajam_tls_port",
                _HTTP_TLS_DEFAULT,
                address or tlsenable,
                f"tlsenable=yes, no port in tlsbindaddr: Asterisk's default {_HTTP_TLS_DEFAULT}",
            )


def read_manager(found: Found) -> None:
    general = _general(found, "manager.conf")
    if general is None:
        return
    port = general.entry("port")
    if port is not None:
        found.set(
            "ami_port", port_number(port.value, port, found, "value"), port, f"port={port.value}"
        )
    tlsenable = general.get("tlsenable")
    if tlsenable is not None and tlsenable.lower() in _TRUE:
        address = general.get("tlsbindaddr") or ""
        tls_port = split_host_port(address)[1] or "5039"
        found.note(
            f"manager.conf: AMI over TLS listens on {tls_port}, which no setting covers; "
            "add a custom service for it"
        )


def read_iax(found: Found) -> None:
    general = _general(found, "iax.conf")
    if general is None:
        return
    bindport = general.entry("bindport")
    if bindport is not None:
        port = port_number(bindport.value, bindport, found, "value")
        found.set("iax_port", port, bindport, f"bindport={bindport.value}")
    addresses = general.get_all("bindaddr")
    for address in addresses:
        written = split_host_port(address.value)[1]
        if written is None:
            continue
        port = port_number(written, address, found, "port")
        if "iax_port" not in found.settings:
            found.set("iax_port", port, address, f"bindaddr={address.value}")
        elif found.settings["iax_port"] != port:
            found.note(
                f"iax.conf: bindaddr={address.value} at {found.where(address)} listens on "
                f"{port}, which pbxfw does not open; add a custom service for it"
            )


# -- sshd_config -----------------------------------------------------------


def read_sshd(found: Found, path: Path) -> None:
    if not path.exists():
        found.note(f"{path}: not present; ssh_port keeps its value")
        return
    ports: list[Entry] = []
    _sshd_file(path, path.parent, ports, [])
    if not ports:
        found.note(f"{path}: no Port line; sshd listens on 22 unless told otherwise")
        return
    first = ports[0]
    found.set(
        "ssh_port", port_number(first.value, first, found, "Port"), first, f"Port {first.value}"
    )
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
