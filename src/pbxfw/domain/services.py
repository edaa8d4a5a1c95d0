"""The service catalogue: the PBX services and the traffic each one covers.

Built-in services take their ports from the settings, so moving SIP to 5070
moves the rules with it. Custom services carry their own tcp/udp ports and
ranges and behave exactly like the built-in ones.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Literal

from pbxfw.domain.settings import Settings
from pbxfw.errors import FieldError, ValidationError

__all__ = [
    "BUILTIN_KEYS",
    "BUILTIN_LABELS",
    "CustomService",
    "PortRange",
    "Protocol",
    "Service",
    "catalogue",
    "format_ports",
    "parse_ports",
    "validate_service_key",
]

Protocol = Literal["tcp", "udp"]

BUILTIN_LABELS: dict[str, str] = {
    "sip": "SIP & RTP",
    "iax": "IAX2",
    "web": "WEB",
    "ssh": "SSH",
    "ami": "AMI",
    "ajam": "AJAM / WebRTC / ARI",
    "icmp": "ICMP",
    "cti": "CTI client",
}
BUILTIN_KEYS: tuple[str, ...] = tuple(BUILTIN_LABELS)

# fullmatch, not match with $ (which also matches before a final newline);
# ASCII digits only, and few enough for int() (a port has at most 5).
_KEY = re.compile(r"[a-z][a-z0-9_]{0,31}")
_PORT_ITEM = re.compile(r"([0-9]{1,10})(?:\s*-\s*([0-9]{1,10}))?")


@dataclass(frozen=True, slots=True, order=True)
class PortRange:
    """Ports ``first``–``last`` (inclusive) of one protocol."""

    protocol: Protocol
    first: int
    last: int

    def __str__(self) -> str:
        ports = str(self.first) if self.first == self.last else f"{self.first}-{self.last}"
        return f"{self.protocol}/{ports}"


@dataclass(frozen=True, slots=True)
class Service:
    """A catalogue entry with its resolved traffic."""

    key: str
    label: str
    ports: tuple[PortRange, ...]
    icmp: bool = False
    builtin: bool = True

    def ports_text(self) -> str:
        """A short human description: ``udp 5060, 10000-10800; tcp 5060-5061``."""
        if self.icmp:
            return "ICMP echo-request, ICMPv6 echo-request"
        parts = []
        for protocol in ("udp", "tcp"):
            ranges = [r for r in self.ports if r.protocol == protocol]
            if ranges:
                parts.append(f"{protocol} " + format_ports(ranges))
        return "; ".join(parts)


@dataclass(frozen=True, slots=True)
class CustomService:
    """An administrator's service: a key, a label and tcp/udp ports."""

    key: str
    label: str
    tcp: tuple[tuple[int, int], ...] = field(default_factory=tuple)
    udp: tuple[tuple[int, int], ...] = field(default_factory=tuple)

    def resolve(self) -> Service:
        ports = [PortRange("tcp", a, b) for a, b in self.tcp]
        ports += [PortRange("udp", a, b) for a, b in self.udp]
        return Service(self.key, self.label, tuple(ports), builtin=False)

    @classmethod
    def create(cls, key: str, label: str, tcp: str = "", udp: str = "") -> CustomService:
        """Validate and build; errors name ``key``, ``label``, ``tcp`` or ``udp``."""
        errors: list[FieldError] = []
        try:
            validate_service_key(key)
        except ValidationError as exc:
            errors += exc.errors
        label = label.strip() or key
        if len(label) > 64 or not label.isprintable():
            errors.append(FieldError("label", "must be 1–64 printable characters"))
        parsed: dict[str, tuple[tuple[int, int], ...]] = {}
        for name, text in (("tcp", tcp), ("udp", udp)):
            try:
                parsed[name] = parse_ports(text, name)
            except ValidationError as exc:
                errors += exc.errors
        if not errors and not parsed["tcp"] and not parsed["udp"]:
            errors.append(
                FieldError("tcp", "give at least one tcp or udp port, e.g. 5000,6000-6010")
            )
        if errors:
            raise ValidationError(errors)
        return cls(key, label, parsed["tcp"], parsed["udp"])


def validate_service_key(key: str, field: str = "key") -> str:
    """A custom service key: lower-case letter, then letters, digits, ``_``; ≤ 32."""
    if not _KEY.fullmatch(key):
        raise ValidationError(
            FieldError(
                field,
                f"{key!r} is not a valid service key: start with a lower-case letter, "
                "then letters, digits or _ (at most 32)",
            )
        )
    if key in BUILTIN_LABELS:
        raise ValidationError(FieldError(field, f"{key!r} is a built-in service"))
    return key


def parse_ports(text: str, field: str = "ports") -> tuple[tuple[int, int], ...]:
    """``"5000, 6000-6010"`` → ``((5000, 5000), (6000, 6010))``; ports 1–65535."""
    result = []
    for item in (part.strip() for part in text.split(",")):
        if not item:
            continue
        match = _PORT_ITEM.fullmatch(item)
        if not match:
            raise ValidationError(
                FieldError(field, f"{item!r} is not a port or range; write e.g. 5000 or 6000-6010")
            )
        first = int(match.group(1))
        last = int(match.group(2) or first)
        for port in (first, last):
            if not 1 <= port <= 65535:
                raise ValidationError(FieldError(field, f"port {port} is outside 1–65535"))
        if first > last:
            raise ValidationError(
                FieldError(field, f"range {item!r} runs backwards; write {last}-{first}")
            )
        result.append((first, last))
    return tuple(sorted(set(result)))


def format_ports(ranges: list[PortRange] | tuple[tuple[int, int], ...]) -> str:
    """Comma-separated ports and ranges, in order."""
    pairs = [(r.first, r.last) if isinstance(r, PortRange) else r for r in ranges]
    return ", ".join(str(a) if a == b else f"{a}-{b}" for a, b in sorted(pairs))


def catalogue(settings: Settings, custom: tuple[CustomService, ...] = ()) -> tuple[Service, ...]:
    """Every service, built-in first, with ports resolved from ``settings``."""
    s = settings

    def both(port: int) -> list[PortRange]:
        return [PortRange("udp", port, port), PortRange("tcp", port, port)]

    def tcp(*ports: int) -> tuple[PortRange, ...]:
        return tuple(PortRange("tcp", p, p) for p in ports)

    builtin = (
        Service(
            "sip",
            BUILTIN_LABELS["sip"],
            (
                *both(s.sip_port),
                PortRange("tcp", s.tls_port, s.tls_port),
                PortRange("udp", s.rtp_port_from, s.rtp_port_to),
            ),
        ),
        Service("iax", BUILTIN_LABELS["iax"], (PortRange("udp", s.iax_port, s.iax_port),)),
        Service("web", BUILTIN_LABELS["web"], tcp(s.web_port, s.web_https_port)),
        Service("ssh", BUILTIN_LABELS["ssh"], tcp(s.ssh_port)),
        Service("ami", BUILTIN_LABELS["ami"], tcp(s.ami_port)),
        Service("ajam", BUILTIN_LABELS["ajam"], tcp(s.ajam_port, s.ajam_tls_port)),
        Service("icmp", BUILTIN_LABELS["icmp"], (), icmp=True),
        Service("cti", BUILTIN_LABELS["cti"], tcp(*s.cti_ports)),
    )
    return builtin + tuple(c.resolve() for c in sorted(custom, key=lambda c: c.key))
