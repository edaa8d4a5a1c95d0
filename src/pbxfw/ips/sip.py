"""A small, strict reader of the headers of one SIP request in a UDP payload.

Used on the packet path of the scanner fingerprints (agent.fingerprint): it
must be quick, bounded and never raise. It reads at most :data:`MAX_BYTES`
bytes and :data:`MAX_HEADERS` header lines, and gives up (None: the packet is
accepted and the log-based jails judge it) on anything that is not a SIP
request as RFC 3261 §7.1 writes it: ``Method SP Request-URI SP SIP/2.0``,
header lines ``name: value`` ending in CRLF (a bare LF is taken too, as
Asterisk's PJSIP does), continuation lines (leading space or tab) joined to
the header before, the headers ending at an empty line or the end of what
was read. Compact header forms (``f`` for From) are read as their long
names. A response (``SIP/2.0 200 OK``) is not a request: None.
"""

from __future__ import annotations

import re

from pbxfw.domain.fingerprints import COMPACT_FORMS

__all__ = ["MAX_BYTES", "MAX_HEADERS", "request_headers"]

#: What the kernel copies to the agent and the reader looks at: a scanner's
#: OPTIONS or REGISTER is 400-700 bytes; a User-Agent after this is not read.
MAX_BYTES = 4096
MAX_HEADERS = 64

# RFC 3261 §25.1: Method = token; the Request-URI has no space in it.
_REQUEST_LINE = re.compile(rb"[A-Za-z0-9.!%*_+`'~-]{1,32} [!-~]{1,2048} SIP/2\.0")
_NAME = re.compile(rb"[A-Za-z0-9.!%*_+`'~-]{1,64}")


def request_headers(payload: bytes, wanted: frozenset[str]) -> dict[str, str] | None:
    """The values of the headers in ``wanted`` (lower-case long names) of
    the SIP request in ``payload``, by lower-case name (a header given twice:
    its values joined by ``, ``); None when ``payload`` is not a well-formed
    SIP request. Never raises."""
    data = payload[:MAX_BYTES]
    lines = data.split(b"\n", MAX_HEADERS + 1)
    if not lines or not _REQUEST_LINE.fullmatch(lines[0].rstrip(b"\r")):
        return None
    found: dict[str, str] = {}
    current: str | None = None  # the wanted header the next continuation belongs to
    header_seen = False
    for raw in lines[1 : MAX_HEADERS + 1]:
        line = raw.rstrip(b"\r")
        if not line:
            return found  # the end of the headers
        if line[:1] in (b" ", b"\t"):
            if not header_seen:
                return None  # a continuation of nothing
            if current is not None:
                found[current] += " " + line.strip().decode("utf-8", "replace")
            continue
        header_seen = True
        name, colon, value = line.partition(b":")
        name = name.rstrip(b" \t")
        if not colon or not _NAME.fullmatch(name):
            return None
        key = name.decode("ascii").lower()
        key = COMPACT_FORMS.get(key, key)
        if key in wanted:
            text = value.strip().decode("utf-8", "replace")
            found[key] = f"{found[key]}, {text}" if key in found else text
            current = key
        else:
            current = None
    return found
