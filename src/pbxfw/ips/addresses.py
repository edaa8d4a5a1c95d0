"""Address fields as PBX, SSH and web logs write them (the contract: docs/ips-formats.md).

A grammar (``ips/grammars/``) cuts out the field the program wrote for the
remote party; this module turns that field into an address, or None.
:class:`Addresses` is the cached form a :class:`~pbxfw.ips.recognisers.Recogniser`
uses: attackers repeat, over many source ports.
"""

from __future__ import annotations

import ipaddress
import socket
from typing import Any

from pbxfw.domain.addresses import IPAddress

__all__ = ["Addresses", "parse_remote_address"]

#: Cache marker: not in the cache (compared by identity; a cached value may be None).
_MISSING: Any = object()


def _ip(text: str) -> IPAddress | None:
    """One bare address (brackets allowed), ``::ffff:a.b.c.d`` mapped to IPv4."""
    if ":" not in text:
        # inet_pton is strict (four decimal octets, no leading zeros) and an
        # order of magnitude faster than ipaddress's own parser.
        try:
            return ipaddress.IPv4Address(socket.inet_pton(socket.AF_INET, text))
        except OSError:
            return None
    if text.startswith("[") and text.endswith("]"):
        text = text[1:-1]
    if "%" in text:  # zone index: a link-local peer, not something to ban
        return None
    try:
        address = ipaddress.ip_address(text)
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


def parse_remote_address(text: str, *, port: bool | None = None) -> IPAddress | None:
    """Parse an address field as PBX, SSH and web logs write it; None if it is not one.

    Accepted: ``1.2.3.4``, ``1.2.3.4:5060``, ``2001:db8::1``, ``[2001:db8::1]``,
    ``[2001:db8::1]:5060``, ``IPV4/UDP/1.2.3.4/5060``, ``IPV6/TCP/2001:db8::1/5061``;
    ``::ffff:a.b.c.d`` forms give the IPv4 address. ``port`` says whether an
    unbracketed IPv6 text ends with ``:port`` (dropbear's ``::ffff:1.2.3.4:22``):
    True: it does; False: never; None: only when there is exactly one colon.
    """
    bare = _bare_address(text, port)
    return None if bare is None else _ip(bare)


def _bare_address(text: str, port: bool | None) -> str | None:
    """The address part of an address field (port and ``IPVn/proto/`` removed), or None.

    ``parse_remote_address(text, port=port)`` is ``_ip(_bare_address(text, port))``;
    the split lets :class:`Addresses` cache by the bare address, which repeats
    across the many source ports of one attacker.
    """
    if text.startswith(("IPV4/", "IPV6/")):
        parts = text.split("/")
        return parts[2] if len(parts) == 4 and parts[3].isdigit() else None
    if text.startswith("["):
        close = text.find("]")
        if close < 0:
            return None
        rest = text[close + 1 :]
        if rest and not (rest[0] == ":" and rest[1:].isdigit()):
            return None
        return text[1:close]
    colons = text.count(":")
    if colons == 1 or (port and colons > 1):
        head, _, tail = text.rpartition(":")
        if not tail.isdigit():
            return None
        return head
    if port and colons == 0:
        return None
    return text


class _Fields(dict[str, "tuple[IPAddress, str] | None"]):
    """Address field text -> (address, canonical text) or None, for one port form;
    a miss parses (``__missing__``), so a hit costs one C-level lookup."""

    __slots__ = ("_hosts", "_port")

    def __init__(self, port: bool | None, hosts: dict[str, tuple[IPAddress, str] | None]) -> None:
        super().__init__()
        self._port = port
        self._hosts = hosts

    def __missing__(self, text: str) -> tuple[IPAddress, str] | None:
        if len(self) > 8192:
            self.clear()
        bare = _bare_address(text, self._port)
        found = None
        if bare is not None:
            hosts = self._hosts
            found = hosts.get(bare, _MISSING)
            if found is _MISSING:
                if len(hosts) > 8192:
                    hosts.clear()
                address = _ip(bare)
                if address is None:
                    found = None
                elif address.version == 4 and ":" not in bare:
                    found = (address, bare)  # inet_pton accepted it: already canonical
                else:
                    found = (address, str(address))
                hosts[bare] = found
        self[text] = found
        return found


class Addresses:
    """:func:`parse_remote_address` with the canonical text (for keys), cached per stream.

    ``addresses.port[form][text]`` is ``addresses.get(text, form)`` (one
    dict lookup on a hit: the grammars' hot path). Two bounded caches: by
    field text per port form, and by bare address. Not thread-safe.
    """

    __slots__ = ("port",)

    def __init__(self) -> None:
        # bare address text -> address, canonical text (shared by the forms)
        hosts: dict[str, tuple[IPAddress, str] | None] = {}
        #: port form (see parse_remote_address) -> field text -> address, canonical text.
        self.port: dict[bool | None, _Fields] = {
            form: _Fields(form, hosts) for form in (None, True, False)
        }

    def get(self, text: str, port: bool | None = None) -> tuple[IPAddress, str] | None:
        """The address of field ``text`` and its canonical text, or None (see ``port``
        in :func:`parse_remote_address`)."""
        return self.port[port][text]
