"""Recording a configuration revision in the history, cheaply (issue 19).

``ConfigBase._edit`` (usecases/base.py) calls :func:`baseline_of` before an
edit, which also starts tracking the networks it writes
(storage.history_track), and :func:`record_change` after it, in the same
transaction. Most entries are then a **delta** (storage.history_format): the
small rest of the document read again (custom services, country rules, the
settings as stored) and the networks the edit wrote, added to those changed
since the last snapshot; the summary is the diff of what the edit touched
(the rows before its first write of them against the rows now). A **snapshot**
(every network read) is written when the edit cannot say what it wrote (a
bulk write, a service added or removed: every network's verdicts change),
when there is no entry yet, or when the networks changed since the last
snapshot grow past :func:`_delta_too_big`. Re-exported by usecases.history.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from sqlalchemy import func, select

from pbxfw.domain.configuration import Configuration
from pbxfw.domain.countries import country_rule_json
from pbxfw.domain.history import CONFIG, EMPTY_DOCUMENT, Actor, diff_documents, summary_of
from pbxfw.domain.settings import Settings
from pbxfw.storage import history_track
from pbxfw.storage.history import (
    add_entry,
    head_entry,
    network_document,
    network_documents,
    stored_document,
    stored_settings,
)
from pbxfw.storage.history_format import (
    DELTA,
    Stored,
    assemble,
    pack_delta,
    pack_snapshot,
    read_stored,
    settings_seen,
)
from pbxfw.storage.models import NetworkRow
from pbxfw.storage.repository import Repository
from pbxfw.usecases.actor import current_actor

__all__ = ["Baseline", "baseline_of", "document_now", "record_change"]

#: A delta with up to this many changed networks is always kept as a delta.
DELTA_SMALL = 16
#: No delta holds more networks than this (what each edit reads and writes back).
DELTA_MAX = 256


@dataclass(frozen=True, slots=True)
class Baseline:
    """The configuration before an edit, when the history was empty."""

    rest: dict[str, Any]
    networks: list[dict[str, Any]]


def _rest(
    repo: Repository, previous: dict[str, Any] | None = None
) -> tuple[dict[str, Any], tuple[str, ...]]:
    """The document of ``repo.site`` without its networks, the settings as
    stored (storage.history_format), and the service keys of its networks'
    verdicts. ``previous``: a rest whose services and country rules are
    still the stored ones (an edit of settings alone): only the settings are read."""
    if previous is not None and "stored_settings" in previous:
        again = {**previous, "stored_settings": stored_settings(repo)}
        return again, _keys(again)
    config = Configuration(
        (), tuple(repo.custom_services()), Settings(), tuple(repo.country_rules())
    ).normalised()
    from pbxfw.usecases.services import custom_service_json

    rest: dict[str, Any] = {
        "services": [custom_service_json(c) for c in config.custom_services],
        "stored_settings": stored_settings(repo),
    }
    if config.country_rules:
        rest["countries"] = [country_rule_json(r) for r in config.country_rules]
    return rest, config.service_keys()


def _keys(rest: dict[str, Any]) -> tuple[str, ...]:
    from pbxfw.domain.services import BUILTIN_KEYS

    services = rest.get("services")
    custom = [s.get("key") for s in services] if isinstance(services, list) else []
    return BUILTIN_KEYS + tuple(sorted(str(k) for k in custom))


def document_now(repo: Repository) -> dict[str, Any]:
    """Inside a unit of work: the configuration document of ``repo.site`` as
    stored (what ``export`` writes), its networks read straight from their rows
    (storage.history ``network_documents``) and the country database not read."""
    rest, keys = _rest(repo)
    return assemble(rest, network_documents(repo, keys))


def baseline_of(repo: Repository) -> Baseline | None:
    """Before an edit: start tracking the networks it writes; and the
    configuration as it is, when the history of ``repo.site`` is empty (a
    database older than migration 0015, or a new one), else None (the last
    entry holds it already: one indexed query)."""
    head = head_entry(repo, repo.site)
    history_track.start(repo.session, repo.site, head)
    if head is not None:
        return None
    rest, keys = _rest(repo)
    return Baseline(rest, network_documents(repo, keys))


def record_change(
    repo: Repository,
    actor: Actor | None = None,
    *,
    baseline: Baseline | None = None,
    note: str | None = None,
    settings_only: bool = False,
) -> int | None:
    """Inside the write unit of work of a change: record the configuration of
    ``repo.site`` as it now is, by ``actor`` (default: the current one), with
    a summary worded from its diff against the previous entry. ``baseline``
    (from :func:`baseline_of`) is the configuration before the change when the
    history was empty: recorded first, so the change has something to be a
    diff against and to go back to (an empty configuration is not). Returns
    the new entry's rev; None when the document did not change.

    ``settings_only``: the edit changed settings and nothing else, so the
    custom services and country rules are not read again."""
    actor = actor or current_actor()
    now = time.time()
    track = history_track.take(repo.session, repo.site)
    head = head_entry(repo, repo.site) if track is None else track.head
    if head is None and baseline is not None and baseline.networks:
        stored = pack_snapshot(baseline.rest, baseline.networks)
        first = add_entry(
            repo,
            site=repo.site,
            kind=CONFIG,
            at=now,
            actor="pbxfw",
            via="system",
            client="local",
            summary="the configuration before the first recorded change",
            stored=stored,
        )
        head = (first, stored)
    made = None
    if head is not None and track is not None and not track.everything:
        made = _delta(repo, head, track, settings_only)
    if made is None:
        made = _snapshot(repo, head)
    if made is _UNCHANGED:
        return None
    summary, stored = made
    if head is None:
        note = note or "first recorded configuration"
    return add_entry(
        repo,
        site=repo.site,
        kind=CONFIG,
        at=now,
        actor=actor.who,
        via=actor.via,
        client=actor.client,
        summary=summary if note is None else f"{note}: {summary}",
        stored=stored,
    )


#: What :func:`_delta` and :func:`_snapshot` return when the document did not
#: change (compared by identity; :func:`_delta`'s None means "take a snapshot").
_UNCHANGED = ("", b"")


def _part(rest: dict[str, Any], networks: list[dict[str, Any]]) -> dict[str, Any]:
    """A document of ``networks`` (some of them) and ``rest``, for the diff."""
    part = {"networks": networks, "services": rest.get("services", [])}
    part["settings"] = settings_seen(rest)
    if rest.get("countries") is not None:
        part["countries"] = rest["countries"]
    return part


def _delta(
    repo: Repository,
    head: tuple[int, bytes],
    track: history_track.NetworkTrack,
    settings_only: bool,
) -> tuple[str, bytes] | None:
    """The summary and delta of this edit; None: it must be a snapshot."""
    previous: Stored = read_stored(head[1])
    rest, keys = _rest(repo, previous.rest if settings_only else None)
    if keys != _keys(previous.rest):
        return None  # every network's verdicts are for other services now
    ids = sorted(track.before)
    after = {n["id"]: n for n in network_documents(repo, keys, ids)} if ids else {}
    known: dict[str, dict[str, str]] = {}
    before = [network_document(track.before[i], keys, known) for i in ids if track.before[i]]
    old, new = _part(previous.rest, before), _part(rest, [after[i] for i in ids if i in after])
    if old == new:
        return _UNCHANGED
    summary = summary_of(diff_documents(old, new))
    changes = dict(previous.changes) if previous.form == DELTA else {}
    changes.update({i: after.get(i) for i in ids})
    if _delta_too_big(repo, len(changes)):
        return summary, pack_snapshot(rest, network_documents(repo, keys))
    base = previous.base if previous.form == DELTA and previous.base is not None else head[0]
    return summary, pack_delta(base, rest, changes)


def _delta_too_big(repo: Repository, changed: int) -> bool:
    """A delta of ``changed`` networks is worth a snapshot instead: past
    :data:`DELTA_MAX`, or a quarter of the networks (a snapshot then costs
    little more than the delta each later edit would carry)."""
    if changed <= DELTA_SMALL:
        return False
    if changed > DELTA_MAX:
        return True
    count = repo.session.scalar(
        select(func.count()).select_from(NetworkRow).where(NetworkRow.site == repo.site)
    )
    return changed * 4 > (count or 0)


def _snapshot(repo: Repository, head: tuple[int, bytes] | None) -> tuple[str, bytes]:
    """The summary (against ``head``'s document) and snapshot of the
    configuration as it now is; :data:`_UNCHANGED` when it equals ``head``'s."""
    rest, keys = _rest(repo)
    networks = network_documents(repo, keys)
    document = assemble(rest, networks)
    previous = EMPTY_DOCUMENT if head is None else stored_document(repo, head[1])
    if head is not None and previous == document:
        return _UNCHANGED
    return summary_of(diff_documents(previous, document)), pack_snapshot(rest, networks)
