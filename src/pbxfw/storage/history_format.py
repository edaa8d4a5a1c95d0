"""The stored forms of a configuration entry's document (``config_history.document``).

Three forms, told apart by their first bytes (docs/observability.md "History",
"How a revision is stored"):

* **full** (what pbxfw wrote before, still read): the whole document as
  zlib-compressed JSON; zlib's header makes its first byte ``0x78``.
* **snapshot**: the document in two parts, so that the small one can be read
  alone: the *rest* (custom services, country rules, the settings as stored)
  and the networks, each zlib-compressed JSON.
* **delta**: the rest, and each network that changed since the snapshot it
  names (its ``base``): the network as it now is, or None (removed). A
  revision is its base's networks with these applied, in id order, as the
  document orders them (storage.history ``network_documents``).

Layout of the two new forms: :data:`MAGIC`, the form (``S``/``D``), the base
rev (8 bytes, big-endian; 0 for a snapshot), the length of the compressed rest
(4 bytes), the compressed rest, then (snapshot) the compressed networks. The
base sits at a fixed place, so the pruning reads it without the rest
(:func:`base_of`).

The rest keeps the settings as stored (``stored_settings``: the values set
explicitly), not the whole settings: reading them is one query, while
validating them into the document's ``settings`` costs ten times more on every
edit. :func:`assemble` validates them when a revision is read
(``Settings.from_stored``, as every read of the configuration does).
"""

from __future__ import annotations

import copy
import json
import struct
import zlib
from dataclasses import dataclass, field
from functools import cache, lru_cache
from typing import Any

from pbxfw.domain.settings import Settings

__all__ = [
    "DELTA",
    "FULL",
    "MAGIC",
    "SNAPSHOT",
    "Stored",
    "apply_changes",
    "assemble",
    "base_of",
    "pack_delta",
    "pack_full",
    "pack_snapshot",
    "read_networks",
    "read_stored",
    "settings_seen",
]

MAGIC = b"PBXH"
FULL, SNAPSHOT, DELTA = "full", "snapshot", "delta"
_FORMS = {b"S": SNAPSHOT, b"D": DELTA}
_HEADER = struct.Struct(">4scQI")  # magic, form, base, length of the compressed rest
#: how many first bytes of a stored document :func:`base_of` needs
PREFIX = _HEADER.size


def _json(value: object) -> bytes:
    # Level 1: a tenth of the JSON already, in half the time of the default level.
    return zlib.compress(json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode(), 1)


def _value(data: bytes) -> Any:
    return json.loads(zlib.decompress(data))


def pack_full(document: dict[str, Any]) -> bytes:
    """The old form (the whole document); kept for the tests of old rows."""
    return _json(document)


def pack_snapshot(rest: dict[str, Any], networks: list[dict[str, Any]]) -> bytes:
    head = _json(rest)
    return _HEADER.pack(MAGIC, b"S", 0, len(head)) + head + _json(networks)


def pack_delta(base: int, rest: dict[str, Any], changes: dict[int, dict[str, Any] | None]) -> bytes:
    """``changes``: every network changed since the snapshot ``base``, by id."""
    head = _json({**rest, "changes": [[k, v] for k, v in sorted(changes.items())]})
    return _HEADER.pack(MAGIC, b"D", base, len(head)) + head


def base_of(prefix: bytes) -> int | None:
    """The base rev of a delta from its first :data:`PREFIX` bytes; None: not a delta."""
    if len(prefix) < PREFIX or not prefix.startswith(MAGIC):
        return None
    _, form, base, _ = _HEADER.unpack_from(prefix)
    return int(base) if form == b"D" else None


@dataclass(slots=True)
class Stored:
    """One stored document, its rest read (the networks only when asked)."""

    form: str
    #: the document without ``networks`` (full form: the whole document)
    rest: dict[str, Any]
    #: a delta's snapshot
    base: int | None = None
    #: a delta's networks changed since its base, by id (None: removed)
    changes: dict[int, dict[str, Any] | None] = field(default_factory=dict)


def read_stored(data: bytes) -> Stored:
    """The form and rest of ``data``; a full document is decompressed whole."""
    if not data.startswith(MAGIC):
        return Stored(FULL, _value(data))
    _, form, base, length = _HEADER.unpack_from(data)
    rest: dict[str, Any] = _value(data[PREFIX : PREFIX + length])
    if _FORMS.get(form) == SNAPSHOT:
        return Stored(SNAPSHOT, rest)
    if _FORMS.get(form) != DELTA:
        raise ValueError(f"unknown stored history form {form!r}")
    changes = {int(k): v for k, v in rest.pop("changes")}
    return Stored(DELTA, rest, int(base), changes)


def read_networks(data: bytes, stored: Stored | None = None) -> list[dict[str, Any]]:
    """The networks of a full document or a snapshot (not of a delta)."""
    stored = stored or read_stored(data)
    if stored.form == FULL:
        found = stored.rest.get("networks")
        return list(found) if isinstance(found, list) else []
    if stored.form != SNAPSHOT:
        raise ValueError("a delta has no networks of its own")
    _, _, _, length = _HEADER.unpack_from(data)
    networks: list[dict[str, Any]] = _value(data[PREFIX + length :])
    return networks


def apply_changes(
    networks: list[dict[str, Any]], changes: dict[int, dict[str, Any] | None]
) -> list[dict[str, Any]]:
    """A snapshot's networks (in id order) with a delta's ``changes``, in id order."""
    if not changes:
        return networks
    by_id = {n["id"]: n for n in networks}
    for ident, network in changes.items():
        if network is None:
            by_id.pop(ident, None)
        else:
            by_id[ident] = network
    return [by_id[k] for k in sorted(by_id)]


@cache
def _defaults() -> dict[str, Any]:
    return Settings().model_dump()


def settings_seen(rest: dict[str, Any]) -> dict[str, Any]:
    """The settings a rest says, for the one-line summary of an edit: the
    document's own (full form), else the defaults with the stored values over
    them (what ``Settings.from_stored`` makes of valid values, without the
    validation: the document of a revision is :func:`assemble`'s)."""
    settings = rest.get("settings")
    if isinstance(settings, dict):
        return settings
    defaults = _defaults()
    stored = rest.get("stored_settings") or {}
    return defaults | {k: v for k, v in stored.items() if k in defaults}


@lru_cache(maxsize=16)
def _validated(stored: str) -> dict[str, Any]:
    """The whole settings of stored values (JSON text): validating them is
    most of what reading a revision costs, and a revision and the one before
    it mostly store the same (``history show`` reads both)."""
    settings: dict[str, Any] = Settings.from_stored(json.loads(stored))[0].model_dump()
    return settings


def assemble(rest: dict[str, Any], networks: list[dict[str, Any]]) -> dict[str, Any]:
    """The document (``usecases.document.document_of``'s keys and order) of a
    new form's ``rest`` and ``networks``; its settings validated from the
    stored ones as any read of the configuration does."""
    stored = json.dumps(rest.get("stored_settings") or {}, sort_keys=True)
    document: dict[str, Any] = {
        "networks": networks,
        "services": rest.get("services", []),
        "settings": copy.deepcopy(_validated(stored)),
    }
    if "countries" in rest:
        document["countries"] = rest["countries"]
    return document
