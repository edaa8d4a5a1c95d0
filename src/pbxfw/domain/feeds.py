"""Blocklist feeds (issue 17): the ``Feed`` model and its one validator.

A feed is a list of addresses published by someone else (APIBAN, VoIPBL,
FireHOL, Spamhaus DROP) that the agent fetches every ``every`` seconds and
drops for the feed's ``scope``: service keys like a jail's scope, or every
packet (``all``). The lists themselves (parsing, refusals, the shrink
hold-back) are in :mod:`pbxfw.domain.feed_lists`. Pure: no I/O.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace

from pbxfw.errors import FieldError, ValidationError

__all__ = [
    "ALL_SCOPE",
    "FEED_FORMATS",
    "MAX_EVERY",
    "MIN_EVERY",
    "Feed",
    "every_text",
    "feed_json",
    "feed_origin",
    "parse_every",
    "parse_headers",
    "parse_scope",
    "validate_feed",
]

#: The formats a feed may have (docs/countries-and-feeds.md, "Formats").
FEED_FORMATS = ("plain", "apiban", "json")
#: The scope of a feed that drops every packet of its addresses.
ALL_SCOPE = "all"
#: Fetching more often than every 5 minutes only loads the publisher (APIBAN
#: asks for no more than a few fetches an hour).
MIN_EVERY = 300
MAX_EVERY = 7 * 86400
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
# Feed names become kernel set names (``feed_<name>_v4``): nft identifiers,
# short enough for any kernel's set name limit.
_NAME = re.compile(r"[a-z][a-z0-9_-]{0,23}")
_HEADER_NAME = re.compile(r"[A-Za-z0-9!#$%&'*+.^_`|~-]+")


@dataclass(frozen=True, slots=True)
class Feed:
    """A stored feed. ``scope`` is ``("all",)`` or sorted service keys;
    ``headers`` are ``(name, value)`` pairs sent with every fetch."""

    name: str
    url: str
    format: str = "plain"
    every: int = 4 * 3600
    scope: tuple[str, ...] = (ALL_SCOPE,)
    headers: tuple[tuple[str, str], ...] = ()
    id: int | None = None

    @property
    def origin(self) -> str:
        return feed_origin(self.name)

    @property
    def everything(self) -> bool:
        """True when the feed drops every packet of its addresses."""
        return ALL_SCOPE in self.scope

    def with_changes(self, **changes: object) -> Feed:
        return replace(self, **changes)  # type: ignore[arg-type]


def feed_origin(name: str) -> str:
    """The origin of a feed's entries (DESIGN §7): ``feed:NAME``."""
    return f"feed:{name}"


def parse_every(value: str | int, field: str = "every") -> int:
    """``4h``, ``30m``, ``1d``, ``900s`` or seconds → seconds, within 5 min .. 7 days."""
    text = str(value).strip().lower()
    match = re.fullmatch(r"(\d{1,7})\s*([smhd]?)", text)
    if match is None:
        raise ValidationError(
            FieldError(field, f"{value!r} is not a period; give e.g. 4h, 30m, 1d or seconds")
        )
    seconds = int(match.group(1)) * _UNITS[match.group(2) or "s"]
    if not MIN_EVERY <= seconds <= MAX_EVERY:
        raise ValidationError(
            FieldError(field, f"{value!r} is out of range; give between 5m and 7d")
        )
    return seconds


def every_text(seconds: int) -> str:
    """Seconds → the shortest exact ``4h``/``30m``/``1d`` form."""
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds % size == 0:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


def parse_scope(
    scope: str | Iterable[str], service_keys: Sequence[str], field: str = "scope"
) -> tuple[str, ...]:
    """``all`` or service keys (comma-separated) → ``("all",)`` or sorted keys."""
    items = scope.replace(",", " ").split() if isinstance(scope, str) else list(scope)
    keys = {item.strip().lower() for item in items if item.strip()}
    if not keys:
        raise ValidationError(
            FieldError(field, "is empty; give service keys such as sip,iax or 'all'")
        )
    if ALL_SCOPE in keys:
        if len(keys) > 1:
            raise ValidationError(FieldError(field, "'all' covers every service; give it alone"))
        return (ALL_SCOPE,)
    unknown = sorted(keys - set(service_keys))
    if unknown:
        raise ValidationError(
            FieldError(
                field,
                f"unknown service {unknown[0]!r}; known: {', '.join(service_keys)}, or 'all'",
            )
        )
    return tuple(sorted(keys))


def parse_headers(headers: Iterable[str], field: str = "headers") -> tuple[tuple[str, str], ...]:
    """``'Name: value'`` texts → ``(name, value)`` pairs (a key in a header, for APIBAN)."""
    out: list[tuple[str, str]] = []
    for i, text in enumerate(headers):
        name, sep, value = text.partition(":")
        name, value = name.strip(), value.strip()
        if not sep or not _HEADER_NAME.fullmatch(name) or not value:
            raise ValidationError(
                FieldError(f"{field}[{i}]", "give 'Name: value', e.g. 'Authorization: Bearer KEY'")
            )
        if any(c in value for c in "\r\n\0"):
            raise ValidationError(FieldError(f"{field}[{i}]", "a header value is one line"))
        out.append((name, value))
    return tuple(out)


def _check_url(url: str) -> str:
    url = url.strip()
    match = re.fullmatch(r"(?i)(https?)://([^/\s?#]+)(\S*)", url)
    if match is None or len(url) > 2000:
        raise ValidationError(
            FieldError("url", f"{url!r} is not an http:// or https:// address of a list")
        )
    return url


def validate_feed(
    name: str,
    url: str,
    *,
    format: str = "plain",
    every: str | int = "4h",
    scope: str | Iterable[str] = ALL_SCOPE,
    headers: Iterable[str] = (),
    others: Iterable[Feed] = (),
    service_keys: Sequence[str] = (),
    own_id: int | None = None,
) -> Feed:
    """The one validator: every field, and no two feeds with one name.

    Raises ValidationError naming the field and the fix.
    """
    key = name.strip().lower()
    if not _NAME.fullmatch(key):
        raise ValidationError(
            FieldError(
                "name",
                f"{name!r} is not a feed name; give 1-24 letters, digits, '_' or '-', "
                "starting with a letter (it names the kernel sets feed_<name>_v4/_v6)",
            )
        )
    for other in others:
        if own_id is not None and other.id == own_id:
            continue
        if other.name == key:
            raise ValidationError(FieldError("name", f"feed {key!r} exists; choose another name"))
        # Feed X's blocks and feed X_net's addresses would be one kernel set
        # (feed_X_net_v4: compiler.feeds feed_set_name).
        if key == f"{other.name}_net" or other.name == f"{key}_net":
            raise ValidationError(
                FieldError(
                    "name",
                    f"feed {key!r} would share the kernel sets feed_<name>_net_v4/_v6 "
                    f"with feed {other.name!r}; choose another name",
                )
            )
    fmt = format.strip().lower()
    if fmt not in FEED_FORMATS:
        raise ValidationError(
            FieldError("format", f"{format!r} is not a feed format; give {', '.join(FEED_FORMATS)}")
        )
    return Feed(
        name=key,
        url=_check_url(url),
        format=fmt,
        every=parse_every(every),
        scope=parse_scope(scope, service_keys),
        headers=parse_headers(headers),
        id=own_id,
    )


def feed_json(feed: Feed, *, secrets: bool = False) -> dict[str, object]:
    """A feed's public shape. Header values are keys (APIBAN): shown as
    ``***`` unless ``secrets`` (the configuration document keeps them)."""
    return {
        "id": feed.id,
        "name": feed.name,
        "url": feed.url,
        "format": feed.format,
        "every": every_text(feed.every),
        "scope": list(feed.scope),
        "headers": [f"{n}: {v if secrets else '***'}" for n, v in feed.headers],
    }
