"""The history of configuration changes (issue 19): its entries and the readable diff.

Pure: an entry is what was stored; :func:`diff_documents` compares two
configuration documents (DESIGN §5, ``usecases.document.document_of``) and
says what changed in the words an administrator uses ("network Office: ssh
allow → block", "setting ips_maxretry: 5 → 3", "network Lab added").
``diff_documents(a, b)`` is empty exactly when ``a == b``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

__all__ = [
    "CONFIG",
    "EMPTY_DOCUMENT",
    "KINDS",
    "VIAS",
    "Actor",
    "HistoryEntry",
    "diff_documents",
    "summary_of",
]

#: What an entry records: a configuration revision (with its document), a
#: ban made or lifted by an administrator, or a new country database (a
#: summary only: neither is part of the configuration document).
CONFIG = "config"
KINDS = (CONFIG, "ban", "geo")

#: What the first recorded configuration is compared with: nothing configured.
EMPTY_DOCUMENT: Mapping[str, Any] = {"networks": [], "services": [], "settings": {}}

#: Through what a change came: the adapters, an import of a document, the
#: fleet (a site's starting configuration), and pbxfw itself (``system``: a
#: change the kernel's confirm window rolled back, carried into storage).
VIAS = ("cli", "rest", "web", "import", "fleet", "system")


@dataclass(frozen=True, slots=True)
class Actor:
    """Who makes a change (an administrator's name; the CLI's OS user, with
    ``SUDO_USER``: ``root (sudo: bob)``), through what (:data:`VIAS`) and from
    where (the client's address; ``local`` for the CLI)."""

    who: str
    via: str
    client: str = "local"

    def through(self, via: str) -> Actor:
        """The same person from the same place, through ``via`` (an import, say)."""
        return Actor(self.who, via, self.client)

    def words(self) -> str:
        """``alice via web from 203.0.113.9`` (the client left out when local)."""
        where = "" if self.client == "local" else f" from {self.client}"
        return f"{self.who} via {self.via}{where}"


@dataclass(frozen=True, slots=True)
class HistoryEntry:
    """One row of the history; ``document`` only when asked for (``show``)."""

    rev: int
    site: str
    at: float
    actor: str
    via: str
    client: str
    summary: str
    kind: str = CONFIG
    document: dict[str, Any] | None = None

    def as_json(self) -> dict[str, Any]:
        return {
            "rev": self.rev,
            "site": self.site,
            "at": self.at,
            "actor": self.actor,
            "via": self.via,
            "client": self.client,
            "kind": self.kind,
            "summary": self.summary,
        }


def summary_of(lines: Sequence[str], limit: int = 200) -> str:
    """One line for the list: the first change, and how many more there are."""
    if not lines:
        return "no change"
    first = lines[0] if len(lines[0]) <= limit else lines[0][: limit - 1] + "…"
    return first if len(lines) == 1 else f"{first} (and {len(lines) - 1} more)"


def _text(value: object) -> str:
    if isinstance(value, bool):
        return "yes" if value else "no"
    if value is None:
        return "none"
    if isinstance(value, str):
        return repr(value) if value == "" or value != value.strip() else value
    if isinstance(value, list):
        return ",".join(_text(v) for v in value) or "none"
    return str(value)


def _change(label: str, old: object, new: object) -> str:
    return f"{label}: {_text(old)} → {_text(new)}"


def _fields(
    label: str, old: Mapping[str, Any], new: Mapping[str, Any], skip: tuple[str, ...]
) -> list[str]:
    """The changed fields of one object; its ``services`` map per service key."""
    lines: list[str] = []
    for key in sorted(set(old) | set(new)):
        if key in skip or (old.get(key) == new.get(key) and (key in old) == (key in new)):
            continue
        before, after = old.get(key), new.get(key)
        if key == "services" and isinstance(before, dict) and isinstance(after, dict):
            for service in sorted(set(before) | set(after)):
                if before.get(service, "–") != after.get(service, "–") or (
                    (service in before) != (service in after)
                ):
                    lines.append(
                        f"{label}: {service} {before.get(service, '–')} → {after.get(service, '–')}"
                    )
            continue
        lines.append(_change(f"{label} {key}", before, after))
    return lines


def _keyed(
    noun: str,
    old: object,
    new: object,
    key: Callable[[Mapping[str, Any]], object],
    name: Callable[[Mapping[str, Any]], str],
    skip: tuple[str, ...],
    added: Callable[[Mapping[str, Any]], str] = lambda _: "",
) -> list[str]:
    """The changes of one list of objects, matched by ``key`` (a network's id, a
    service's key): added, removed, changed field by field; the order too."""
    if old == new:
        return []
    olds, news = _objects(old), _objects(new)
    if olds is None or news is None:
        return [f"{noun}s: replaced"]
    old_keys, new_keys = [key(o) for o in olds], [key(n) for n in news]
    if len(set(old_keys)) != len(old_keys) or len(set(new_keys)) != len(new_keys):
        # Without one key per object the lists are compared by place.
        old_keys, new_keys = list(range(len(olds))), list(range(len(news)))
    before = dict(zip(old_keys, olds, strict=True))
    after = dict(zip(new_keys, news, strict=True))
    lines: list[str] = []
    for k, item in before.items():
        if k not in after:
            lines.append(f"{noun} {name(item)} removed")
    for k, item in after.items():
        if k not in before:
            lines.append(f"{noun} {name(item)} added{added(item)}")
            continue
        was = before[k]
        if was == item:
            continue
        label = f"{noun} {name(was)}"
        if name(was) != name(item):
            lines.append(f"{label} renamed to {name(item)}")
            label = f"{noun} {name(item)}"
        lines += _fields(label, was, item, skip)
    kept_old = [k for k in old_keys if k in after]
    kept_new = [k for k in new_keys if k in before]
    if kept_old != kept_new:
        lines.append(f"order of the {noun}s changed")
    if not lines:  # the same objects, unequal by a key's type alone, say
        lines.append(f"{noun}s: changed")
    return lines


def _objects(value: object) -> list[Mapping[str, Any]] | None:
    if value is None:
        return []
    if isinstance(value, list) and all(isinstance(v, dict) for v in value):
        return value
    return None


def _network_key(item: Mapping[str, Any]) -> object:
    ident = item.get("id")
    return ("id", ident) if ident is not None else ("subnet", str(item.get("subnet")))


def _network_name(item: Mapping[str, Any]) -> str:
    return f"{item.get('name')}"


def diff_documents(old: Mapping[str, Any], new: Mapping[str, Any]) -> list[str]:
    """What changed from the document ``old`` to ``new``, one readable line each.

    Custom services come first (a new one changes every network: the service
    is the headline), then networks, matched by id (by subnet without one),
    country rules by id (by name), settings by key. Empty exactly
    when the documents are equal: a difference no rule words is still one
    line ("KEY: changed").
    """
    lines: list[str] = []
    lines += _keyed(
        "service",
        old.get("services"),
        new.get("services"),
        lambda s: s.get("key"),
        lambda s: str(s.get("key")),
        ("key",),
    )
    lines += _keyed(
        "network",
        old.get("networks"),
        new.get("networks"),
        _network_key,
        _network_name,
        ("id", "name"),
        lambda n: f" ({n.get('subnet')})",
    )
    lines += _keyed(
        "country rule",
        old.get("countries"),
        new.get("countries"),
        lambda r: ("id", r["id"]) if r.get("id") is not None else ("name", r.get("name")),
        lambda r: str(r.get("name")),
        ("id", "name"),
    )
    settings_old, settings_new = old.get("settings", {}), new.get("settings", {})
    if isinstance(settings_old, dict) and isinstance(settings_new, dict):
        for key in sorted(set(settings_old) | set(settings_new)):
            if key not in settings_new:
                lines.append(f"setting {key} reset ({_text(settings_old[key])})")
            elif key not in settings_old:
                lines.append(f"setting {key}: set to {_text(settings_new[key])}")
            elif settings_old[key] != settings_new[key]:
                lines.append(_change(f"setting {key}", settings_old[key], settings_new[key]))
    elif settings_old != settings_new:
        lines.append("settings: replaced")
    known = {"networks", "services", "countries", "settings"}
    for key in sorted((set(old) | set(new)) - known, key=str):
        if old.get(key) != new.get(key) or (key in old) != (key in new):
            lines.append(f"{key}: changed")
    if not lines and old != new:
        # e.g. a missing list against an empty one: unequal, nothing to word
        lines.append("document: changed")
    return lines
