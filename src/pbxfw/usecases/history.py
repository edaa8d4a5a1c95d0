"""The history of configuration changes (issue 19): record, list, show, restore.

Recorded once, here, for every adapter: ``ConfigBase._edit`` (usecases/base.py)
calls :func:`record_change` at the end of every edit that bumped the
configuration revision, in the same transaction, with the actor the adapter
named (usecases/actor.py); the ban use cases call :func:`record_ban` for the
bans an administrator makes or lifts. Each configuration entry keeps the
whole document after the change, so that any revision can be shown as a
diff against the one before it (domain.history ``diff_documents``) and
restored: :meth:`HistoryCases.restore` stages it as the stored configuration,
which ``pbxfw apply`` then applies through the usual confirm window.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Engine

from pbxfw.domain.history import (
    CONFIG,
    EMPTY_DOCUMENT,
    Actor,
    HistoryEntry,
    diff_documents,
    summary_of,
)
from pbxfw.domain.sites import FLEET_SITE
from pbxfw.errors import FieldError, NotFoundError, ValidationError
from pbxfw.storage.history import (
    add_entry,
    document_at,
    entries,
    entry,
    last_config,
    last_config_rev,
    network_documents,
    previous_document,
)
from pbxfw.storage.repository import Repository
from pbxfw.usecases.actor import current_actor
from pbxfw.usecases.base import ConfigBase

__all__ = [
    "HistoryCases",
    "HistoryShown",
    "RestoreReport",
    "document_now",
    "record_ban",
    "record_change",
    "record_event",
]

#: The most entries one ``history`` call lists.
LIMIT_MAX = 1000


def document_now(repo: Repository) -> dict[str, Any]:
    """Inside a unit of work: the configuration document of ``repo.site`` as
    stored (what ``export`` writes), its networks read straight from their rows
    (storage.history ``network_documents``) and the country database not read."""
    from pbxfw.domain.configuration import Configuration
    from pbxfw.usecases.document import document_of

    rest = Configuration(
        (), tuple(repo.custom_services()), repo.settings(), tuple(repo.country_rules())
    ).normalised()
    document = document_of(rest)
    document["networks"] = network_documents(repo, rest.service_keys())
    return document


def baseline_of(repo: Repository) -> dict[str, Any] | None:
    """Before an edit: the document as it is, when the history of ``repo.site``
    is empty (a database older than migration 0015, or a new one), else None
    (the last entry holds it already: one indexed query)."""
    if last_config_rev(repo, repo.site) is not None:
        return None
    return document_now(repo)


def record_change(
    repo: Repository,
    actor: Actor | None = None,
    *,
    baseline: dict[str, Any] | None = None,
    note: str | None = None,
    settings_only: bool = False,
) -> int | None:
    """Inside the write unit of work of a change: record the configuration of
    ``repo.site`` as it now is, by ``actor`` (default: the current one), with
    a summary worded from its diff against the previous entry. ``baseline``
    (from :func:`baseline_of`) is the document before the change when the
    history was empty: recorded first, so the change has something to be a
    diff against and to go back to (an empty configuration is not). Returns
    the new entry's rev; None when the document did not change.

    ``settings_only``: the edit changed settings and nothing else (the
    networks, services and country rules of a document do not depend on the
    settings), so only the settings are read again: an edit of a setting
    with 10,000 networks does not rebuild their part of the document."""
    actor = actor or current_actor()
    now = time.time()
    previous = _last_document(repo)
    if settings_only and previous is not None:
        new = {**previous, "settings": repo.settings().model_dump()}
    else:
        new = document_now(repo)
    if previous is None and baseline is not None and baseline.get("networks"):
        add_entry(
            repo,
            site=repo.site,
            kind=CONFIG,
            at=now,
            actor="pbxfw",
            via="system",
            client="local",
            summary="the configuration before the first recorded change",
            document=baseline,
        )
        previous = baseline
    if previous == new:
        return None
    summary = summary_of(diff_documents(previous or EMPTY_DOCUMENT, new))
    if previous is None:
        note = note or "first recorded configuration"
    rev = add_entry(
        repo,
        site=repo.site,
        kind=CONFIG,
        at=now,
        actor=actor.who,
        via=actor.via,
        client=actor.client,
        summary=summary if note is None else f"{note}: {summary}",
        document=new,
    )
    _remember(repo, (rev, now), new)
    return rev


#: The last document this process recorded, per database and site, under the
#: (rev, at) of its entry: the next edit's diff needs it, and reading it back
#: (decompress, parse) costs ~0.1 s for 10,000 networks. Used only while that
#: entry is still the newest (one small query says so); a few sites at most.
_recent: dict[tuple[str, str], tuple[tuple[int, float], dict[str, Any]]] = {}
_RECENT_MAX = 4


def _database(repo: Repository) -> str:
    bind = repo.session.get_bind()
    engine = bind if isinstance(bind, Engine) else bind.engine
    return engine.url.render_as_string(hide_password=True)


def _remember(repo: Repository, head: tuple[int, float], document: dict[str, Any]) -> None:
    key = (_database(repo), repo.site)
    _recent.pop(key, None)
    while len(_recent) >= _RECENT_MAX:
        _recent.pop(next(iter(_recent)))
    _recent[key] = (head, document)


def _last_document(repo: Repository) -> dict[str, Any] | None:
    """The document of the newest configuration entry of ``repo.site`` (None: none)."""
    head = last_config(repo, repo.site)
    if head is None:
        return None
    cached = _recent.get((_database(repo), repo.site))
    if cached is not None and cached[0] == head:
        return cached[1]
    return document_at(repo, head[0])


def record_ban(repo: Repository, summary: str, actor: Actor | None = None) -> int:
    """Inside the write unit of work of an administrator's ban change: one
    summary entry (``ban 203.0.113.5 (manual, 1h)``), the fleet's (bans are)."""
    return record_event(repo, "ban", summary, actor)


def record_event(repo: Repository, kind: str, summary: str, actor: Actor | None = None) -> int:
    """Inside a write unit of work: one summary entry of ``kind`` (``ban``;
    ``geo``: a new country database), the fleet's, without a document."""
    actor = actor or current_actor()
    return add_entry(
        repo,
        site=FLEET_SITE,
        kind=kind,
        at=time.time(),
        actor=actor.who,
        via=actor.via,
        client=actor.client,
        summary=summary,
    )


@dataclass(frozen=True, slots=True)
class HistoryShown:
    """One entry and what it changed: its diff against the configuration
    entry before it (every line "added" for the first one); a ban's summary
    is its own whole story (no lines)."""

    entry: HistoryEntry
    lines: list[str]
    #: the rev the diff is against (None: the first recorded configuration)
    against: int | None

    def as_json(self) -> dict[str, Any]:
        return {
            **self.entry.as_json(),
            "against": self.against,
            "changes": self.lines,
            "document": self.entry.document,
        }


@dataclass(frozen=True, slots=True)
class RestoreReport:
    rev: int
    #: False: the stored configuration already was that revision's
    changed: bool
    #: the configuration revision now stored (what `pbxfw apply` will apply)
    revision: int

    def as_json(self) -> dict[str, Any]:
        return {"restored": self.rev, "changed": self.changed, "revision": self.revision}


def _check_limit(limit: int) -> None:
    if not 1 <= limit <= LIMIT_MAX:
        raise ValidationError(
            FieldError("limit", f"must be a number from 1 to {LIMIT_MAX}; got {limit}")
        )


class HistoryCases(ConfigBase):
    """The history use cases of :class:`~pbxfw.usecases.config.ConfigService`:
    the entries of this service's site, and the administrators' ban entries."""

    def _sites(self) -> tuple[str, ...]:
        return (self.site, FLEET_SITE)

    def history(self, limit: int = 50, before: int | None = None) -> list[HistoryEntry]:
        """The newest ``limit`` entries (older than ``before``), newest first."""
        _check_limit(limit)
        if before is not None and not 1 <= before < 2**63:
            raise ValidationError(FieldError("before", "must be an entry's number (1 or more)"))
        with self.store.read() as repo:
            return entries(repo, self._sites(), limit, before)

    def history_entry(self, rev: int) -> HistoryShown:
        """The entry ``rev`` of this site with its diff; NotFoundError otherwise."""
        with self.store.read() as repo:
            # A number no row can have is no row (SQLite refuses it as a parameter).
            found = entry(repo, rev, self._sites()) if 1 <= rev < 2**63 else None
            if found is None:
                raise NotFoundError(
                    f"there is no history entry {rev} in the site {self.site!r}; "
                    "see `pbxfw history`"
                )
            if found.kind != CONFIG or found.document is None:
                return HistoryShown(found, [], None)
            previous = previous_document(repo, self.site, rev)
        if previous is None:
            return HistoryShown(found, diff_documents(EMPTY_DOCUMENT, found.document), None)
        return HistoryShown(found, diff_documents(previous[1], found.document), previous[0])

    def restore(self, rev: int) -> RestoreReport:
        """Stage the configuration of the entry ``rev`` as the stored one (all or
        nothing, recorded as a new entry "restore of revision REV: …"); applying
        it is ``pbxfw apply`` (with its confirm window) as for any change."""
        from pbxfw.usecases.document import parse_document, replace_configuration

        shown = self.history_entry(rev)
        document = shown.entry.document
        if shown.entry.kind != CONFIG or document is None:
            raise ValidationError(
                FieldError(
                    "rev",
                    f"entry {rev} is a {shown.entry.kind}, not a configuration: "
                    "only a configuration revision can be restored",
                )
            )
        parsed = parse_document(document, stored=True)
        with self._edit(note=f"restore of revision {rev}") as repo:
            if document_now(repo) == document:
                return RestoreReport(rev, False, repo.revision())
            replace_configuration(repo, parsed)
            return RestoreReport(rev, True, repo.revision())
