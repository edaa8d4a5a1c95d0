"""The history of configuration changes (issue 19): record, list, show, restore.

Recorded once, here, for every adapter: ``ConfigBase._edit`` (usecases/base.py)
calls :func:`record_change` at the end of every edit that bumped the
configuration revision, in the same transaction, with the actor the adapter
named (usecases/actor.py; the recording is usecases/history_record.py); the
ban use cases call :func:`record_ban` for the bans an administrator makes or
lifts. Each configuration entry keeps the document after the change (as a
snapshot, or as what changed since one: storage/history_format.py), so that
any revision can be shown as a diff against the one before it
(domain.history ``diff_documents``) and restored: :meth:`HistoryCases.restore`
stages it as the stored configuration, which ``pbxfw apply`` then applies
through the usual confirm window.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from pbxfw.domain.history import (
    CONFIG,
    EMPTY_DOCUMENT,
    Actor,
    HistoryEntry,
    diff_documents,
)
from pbxfw.domain.sites import FLEET_SITE
from pbxfw.errors import FieldError, NotFoundError, ValidationError
from pbxfw.storage.history import add_entry, entries, entry, previous_document
from pbxfw.storage.repository import Repository
from pbxfw.usecases.actor import current_actor
from pbxfw.usecases.base import ConfigBase
from pbxfw.usecases.history_record import baseline_of, document_now, record_change

__all__ = [
    "HistoryCases",
    "HistoryShown",
    "RestoreReport",
    "baseline_of",
    "document_now",
    "record_ban",
    "record_change",
    "record_event",
]

#: The most entries one ``history`` call lists.
LIMIT_MAX = 1000


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
