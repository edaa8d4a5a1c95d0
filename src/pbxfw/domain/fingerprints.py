"""Scanner fingerprints (issue 18): a SIP header and a text that scanners send in it.

A fingerprint matches a SIP request when the named header's value contains
its pattern, compared case-insensitively (``casefold``). The shipped list
(:data:`DEFAULT_FINGERPRINTS`) names the User-Agent strings of SIP scanners
that public lists agree on (docs/fingerprints.md cites them); an
administrator adds patterns and removes any of them, shipped ones included.

Each site keeps only its edits (rows of migration 0013): an added pattern,
or a shipped one switched off. The list a site uses is the shipped list
without the switched-off ones, plus the added ones (:func:`effective_list`),
so a later pbxfw that ships a new pattern gives it to every site that did
not switch it off. Pure: no I/O.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from pbxfw.errors import ConflictError, FieldError, NotFoundError, ValidationError

__all__ = [
    "COMPACT_FORMS",
    "DEFAULT_FINGERPRINTS",
    "DEFAULT_HEADER",
    "DEFAULT_PATTERNS",
    "MAX_PATTERN",
    "Fingerprint",
    "FingerprintEdit",
    "Matcher",
    "canonical_header",
    "effective_list",
    "find",
    "plan_add",
    "validate_fingerprint",
]

DEFAULT_HEADER = "User-Agent"
MAX_PATTERN = 128

#: User-Agent texts of SIP scanners (docs/fingerprints.md: where each comes
#: from). Only tools: a string a real phone or PBX sends (``eyeBeam``,
#: ``X-Lite``, ``Asterisk PBX``, ``Ozeki VoIP SIP SDK``) is left out, as
#: some public lists name those too and a legitimate phone would be banned.
DEFAULT_PATTERNS: tuple[str, ...] = (
    "friendly-scanner",  # sipvicious (svmap, svwar, svcrack) default
    "friendly-request",
    "sipvicious",
    "sipcli",
    "sip-scan",
    "sipscan",  # also SIPScan
    "VaxSIPUserAgent",
    "VaxIPUserAgent",
    "iWar",
    "sundayddr",
    "SIVuS",
    "siparmyknife",
    "pplsip",
    "sipsak",
)


@dataclass(frozen=True, slots=True)
class Fingerprint:
    """One pattern: ``header`` (canonical spelling) contains ``pattern``;
    ``builtin``: shipped with pbxfw."""

    header: str
    pattern: str
    builtin: bool = False

    def key(self) -> tuple[str, str]:
        """What makes two fingerprints the same: the header and the pattern, any case."""
        return self.header.lower(), self.pattern.casefold()

    def as_json(self) -> dict[str, object]:
        return {"header": self.header, "pattern": self.pattern, "builtin": self.builtin}


DEFAULT_FINGERPRINTS: tuple[Fingerprint, ...] = tuple(
    Fingerprint(DEFAULT_HEADER, p, builtin=True) for p in DEFAULT_PATTERNS
)


@dataclass(frozen=True, slots=True)
class FingerprintEdit:
    """A stored edit of a site's list: ``disabled`` a shipped pattern switched
    off, else a pattern the administrator added."""

    header: str
    pattern: str
    disabled: bool = False

    def key(self) -> tuple[str, str]:
        return self.header.lower(), self.pattern.casefold()


def effective_list(edits: Iterable[FingerprintEdit]) -> list[Fingerprint]:
    """The shipped patterns minus those switched off, then the added ones."""
    edits = list(edits)
    off = {e.key() for e in edits if e.disabled}
    out = [f for f in DEFAULT_FINGERPRINTS if f.key() not in off]
    out += [Fingerprint(e.header, e.pattern) for e in edits if not e.disabled]
    return out


#: RFC 3261 header names are tokens; the compact forms the parser expands.
_TOKEN = re.compile(r"[A-Za-z0-9.!%*_+`'~-]{1,64}")
COMPACT_FORMS: dict[str, str] = {
    "i": "call-id",
    "m": "contact",
    "e": "content-encoding",
    "l": "content-length",
    "c": "content-type",
    "f": "from",
    "s": "subject",
    "k": "supported",
    "t": "to",
    "v": "via",
}


def canonical_header(name: str) -> str:
    """``user-agent`` → ``User-Agent``; a compact form (``f``) → its long name."""
    name = COMPACT_FORMS.get(name.lower(), name)
    return "-".join(part[:1].upper() + part[1:].lower() for part in name.split("-"))


def validate_fingerprint(header: str | None, pattern: str) -> Fingerprint:
    """A fingerprint from what an administrator typed; ValidationError naming
    the field otherwise (``header``: a SIP header name, default User-Agent;
    ``pattern``: 1–128 printable characters)."""
    header = DEFAULT_HEADER if header is None or not header.strip() else header.strip()
    errors = []
    if not _TOKEN.fullmatch(header):
        errors.append(
            FieldError("header", "a SIP header name: letters, digits and '-', at most 64")
        )
    text = pattern.strip()
    if not text:
        errors.append(FieldError("pattern", "give the text to look for, e.g. friendly-scanner"))
    elif len(text) > MAX_PATTERN:
        errors.append(FieldError("pattern", f"at most {MAX_PATTERN} characters"))
    elif not text.isprintable():
        errors.append(FieldError("pattern", "printable characters only (no tab, no line break)"))
    if errors:
        raise ValidationError(errors)
    return Fingerprint(canonical_header(header), text)


def plan_add(edits: Sequence[FingerprintEdit], new: Fingerprint) -> FingerprintEdit | None:
    """The edit that adds ``new``: None when it is a shipped pattern switched
    off (the caller deletes that edit); ConflictError when it is listed already."""
    if new.key() in {f.key() for f in effective_list(edits)}:
        raise ConflictError(
            FieldError("pattern", f"{new.header} {new.pattern!r} is listed already")
        )
    if new.key() in {f.key() for f in DEFAULT_FINGERPRINTS}:
        return None
    return FingerprintEdit(new.header, new.pattern)


def find(edits: Sequence[FingerprintEdit], header: str | None, pattern: str) -> Fingerprint:
    """The listed fingerprint ``pattern`` names (any case; ``header`` None: any
    header); NotFoundError when none does."""
    wanted = pattern.strip().casefold()
    head = None if header is None else canonical_header(header.strip()).lower()
    for f in effective_list(edits):
        if f.pattern.casefold() == wanted and (head is None or f.header.lower() == head):
            return f
    raise NotFoundError(f"no fingerprint {pattern!r}; see `pbxfw fingerprint list`")


class Matcher:
    """The list compiled for the packet path: header (lower case) → folded
    patterns. ``match`` gets the headers :func:`pbxfw.ips.sip.request_headers`
    found and returns the first fingerprint matched, or None."""

    __slots__ = ("_by_header",)

    def __init__(self, fingerprints: Iterable[Fingerprint]) -> None:
        by_header: dict[str, list[tuple[str, Fingerprint]]] = {}
        for f in fingerprints:
            by_header.setdefault(f.header.lower(), []).append((f.pattern.casefold(), f))
        self._by_header = by_header

    @property
    def headers(self) -> frozenset[str]:
        """The header names (lower case) worth reading from a packet."""
        return frozenset(self._by_header)

    def __bool__(self) -> bool:
        return bool(self._by_header)

    def match(self, headers: dict[str, str]) -> Fingerprint | None:
        for name, patterns in self._by_header.items():
            value = headers.get(name)
            if value is None:
                continue
            folded = value.casefold()
            for pattern, f in patterns:
                if pattern in folded:
                    return f
        return None
