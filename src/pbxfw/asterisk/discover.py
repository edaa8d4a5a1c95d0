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

The files are read by ``pbxfw.asterisk.discover_files`` (one reader per
file); what they find is gathered and checked in
``pbxfw.asterisk.discover_found``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from pbxfw.asterisk.discover_files import (
    read_http,
    read_iax,
    read_manager,
    read_pjsip,
    read_rtp,
    read_sshd,
)
from pbxfw.asterisk.discover_found import Found, check_folder, split_host_port
from pbxfw.domain.settings import Settings

__all__ = [
    "DEFAULT_CONFIG_DIR",
    "DEFAULT_SSHD_CONFIG",
    "Discovery",
    "discover",
    "split_host_port",
]

DEFAULT_CONFIG_DIR = Path("/etc/asterisk")
DEFAULT_SSHD_CONFIG = Path("/etc/ssh/sshd_config")


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
    check_folder(config_dir)
    found = Found(config_dir)
    read_pjsip(found)
    read_rtp(found)
    read_http(found)
    read_manager(found)
    read_iax(found)
    if sshd_config is not None:
        read_sshd(found, sshd_config)
    found.validate()
    return Discovery(dict(found.settings), list(found.notes), dict(found.sources))
