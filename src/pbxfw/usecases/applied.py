"""What the database keeps about applying, and rollbacks carried into it exactly once.

State in the database (meta): ``applied_document`` and ``applied_revision``
(what the agent enforces), ``confirmed_document`` (what a rollback returns
to), ``pending_change:<netns>`` (the open confirmation window: its token and
where its kernel state lives).

The rule (docs/decisions.md, "Apply and rollback"): the stored
configuration returns to the last confirmed one when the kernel rolls
back, carried by whoever notices first — the watchdog (it runs
``python -m pbxfw.usecases.firewall`` right after restoring), ``confirm``,
``rollback``, the agent, or the next edit or apply — in one transaction that
also clears the pending change, so it happens exactly once
(:func:`carry_rollbacks`). Every edit of the configuration first carries
such a rollback (:func:`settle_rollbacks`, called by ConfigService), so an
edit made after a rollback is made on top of the confirmed configuration and
is what the next apply loads. ``apply`` never reverts the configuration it
is about to load: if it is the one that notices a rollback, it carries it
and refuses (ConflictError), so nothing is applied that nobody looked at.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

from pbxfw.domain.configuration import Configuration
from pbxfw.domain.geo import CountryTable
from pbxfw.errors import ConflictError, FieldError, PbxfwError, StorageError, ValidationError
from pbxfw.kernel.confirm import expire, last_rollback, namespace_dir
from pbxfw.storage.repository import Repository, Store
from pbxfw.usecases.base import stored_configuration
from pbxfw.usecases.document import document_of, parse_document, replace_configuration

__all__ = [
    "PENDING_PREFIX",
    "REJECTED_CONFIG",
    "Revisions",
    "applied_configuration",
    "applied_services",
    "carry_rollbacks",
    "configuration_from_document",
    "initial_document",
    "pending_entry",
    "pending_key",
    "read_revisions",
    "rolled_back_under_you",
    "settle_rollbacks",
]

log = logging.getLogger("pbxfw.firewall")


def configuration_from_document(
    document: dict[str, Any], countries: CountryTable | None = None
) -> Configuration:
    """The configuration of a stored document; ``countries``: the country
    database its rules read (None: every address is ``unknown``)."""
    parsed = parse_document(document, stored=True)
    rules = tuple(parsed.country_rules)
    return Configuration(
        tuple(parsed.networks),
        tuple(parsed.custom_services),
        parsed.settings,
        rules,
        countries if rules else None,
    )


#: The file beside the kernel state that keeps the rejected configuration.
REJECTED_CONFIG = "rejected-config.json"
#: The meta keys of the open confirmation windows: ``pending_change:<netns>``.
PENDING_PREFIX = "pending_change:"


def pending_key(netns: str | None) -> str:
    return f"{PENDING_PREFIX}{netns or ''}"


@dataclass(frozen=True, slots=True)
class _Entry:
    """A change applied with a window, as storage knows it (``pending_change:<netns>``)."""

    key: str
    value: str
    token: str
    state_dir: str
    netns: str | None

    def rolled_back(self) -> bool:
        """The kernel restored the snapshot of this very change."""
        try:
            record = last_rollback(self.state_dir, self.netns)
        except ValueError:
            return False
        return record is not None and record.get("token") == self.token


def pending_entry(key: str, value: str | None) -> _Entry | None:
    if value is None:
        return None
    try:
        data = json.loads(value)
        netns = data.get("netns")
        return _Entry(key, value, str(data["token"]), str(data["state_dir"]), netns)
    except (ValueError, KeyError, TypeError, AttributeError):
        return None  # not ours to read (an older format): never matches a rollback


def _entries(repo: Repository) -> list[_Entry]:
    found = (pending_entry(k, v) for k, v in sorted(repo.meta_items(PENDING_PREFIX).items()))
    return [e for e in found if e is not None]


def carry_rollbacks(repo: Repository) -> dict[str | None, Path]:
    """Inside a write unit of work: carry every rollback the kernel made that
    storage does not know yet; ``{netns: rejected configuration's file}``.

    For each: the stored configuration (the rejected one, with any edit made
    while the window was open) is written to ``rejected-config.json``, and
    the last confirmed configuration becomes the stored and the applied one.
    The pending entry is taken with a compare-and-delete in the same
    transaction, so of several parties noticing the same rollback exactly
    one reverts; the others (and anyone later) find nothing to do, and an
    edit made after the revert is never reverted again.
    """
    carried: dict[str | None, Path] = {}
    for entry in _entries(repo):
        if not entry.rolled_back() or not repo.take_meta(entry.key, entry.value):
            continue
        rejected = document_of(stored_configuration(repo))
        path = namespace_dir(entry.state_dir, entry.netns) / REJECTED_CONFIG
        try:
            path.write_text(json.dumps(rejected, indent=2, ensure_ascii=False) + "\n")
        except OSError as exc:
            raise StorageError(
                f"cannot keep the rejected configuration in {path}: {exc}; nothing was changed"
            ) from None
        confirmed = repo.get_meta("confirmed_document")
        if confirmed is not None:
            replace_configuration(repo, parse_document(json.loads(confirmed), stored=True))
            _record_rollback(repo)
            repo.set_meta("applied_document", confirmed)
            repo.set_meta("applied_revision", str(repo.revision()))
        log.warning(
            "change not confirmed: the stored configuration is back to the last confirmed "
            "one (revision %d); the rejected one is kept in %s",
            repo.revision(),
            path,
        )
        carried[entry.netns] = path
    return carried


def _record_rollback(repo: Repository) -> None:
    """The history's entry of a rollback carried into storage: pbxfw's own."""
    from pbxfw.domain.history import Actor
    from pbxfw.usecases.history import record_change

    record_change(repo, Actor("pbxfw", "system"), note="not confirmed, back to the last confirmed")


def settle_rollbacks(store: Store) -> dict[str | None, Path]:
    """Before reading or editing the configuration: bring storage up to the kernel.

    Every pending change whose window has run out is rolled back in the
    kernel (if its watchdog is late or gone), then every rollback not yet
    in storage is carried (:func:`carry_rollbacks`, its own transaction).
    Costs one small read when nothing is pending. A kernel that refuses the
    snapshot is logged and left to the watchdog and the next caller.
    """
    with store.read() as repo:
        entries = _entries(repo)
    if not entries:
        return {}
    for entry in entries:
        try:
            expire(entry.state_dir, entry.netns)
        except (PbxfwError, OSError, ValueError) as exc:
            log.error("cannot roll back the expired change in %s: %s", entry.state_dir, exc)
    if not any(entry.rolled_back() for entry in entries):
        return {}
    with store.write() as repo:
        return carry_rollbacks(repo)


class Revisions(NamedTuple):
    """The revisions the agent polls every tick (:func:`read_revisions`)."""

    #: ``applied_revision``: the configuration the kernel should hold (None: never applied)
    applied: int | None
    #: ``bans_revision``: counts the changes of the stored bans
    bans: int


def read_revisions(store: Store) -> Revisions:
    """:func:`settle_rollbacks`, then the applied and the ban revisions.

    One query while no confirmation window is open (the pending entries and
    both revisions together): the agent asks every tick, before it reads its
    logs, so a failure line waits for one query, not three. With a window
    open, the rollbacks are settled first, and the revisions read after.
    """
    keys = ("applied_revision", "bans_revision")
    with store.read() as repo:
        items = repo.meta_items(PENDING_PREFIX, *keys)
    if any(key.startswith(PENDING_PREFIX) for key in items):
        settle_rollbacks(store)
        with store.read() as repo:
            items = repo.meta_items(PENDING_PREFIX, *keys)
    applied = items.get("applied_revision")
    return Revisions(
        None if applied is None else int(applied), int(items.get("bans_revision") or "0")
    )


def rolled_back_under_you(carried: dict[str | None, Path], revision: int) -> ConflictError:
    kept = ", ".join(str(p) for p in carried.values())
    return ConflictError(
        FieldError(
            "configuration",
            "the change applied before was not confirmed in time and has been rolled back: "
            f"the stored configuration is back to the last confirmed one (revision {revision}), "
            f"the rejected one is kept in {kept}. Nothing was applied: review the "
            "configuration (it is not what it was a moment ago) and apply again",
        )
    )


def applied_configuration(repo: Repository) -> tuple[int | None, Configuration]:
    document = repo.get_meta("applied_document")
    revision = repo.get_meta("applied_revision")
    if document is None or revision is None:
        return None, stored_configuration(repo)
    try:
        parsed = json.loads(document)
        # The country database is the fleet's current one: an import reaches
        # the kernel at the next load (docs/countries-and-feeds.md).
        table = repo.geo_table() if isinstance(parsed, dict) and parsed.get("countries") else None
        return int(revision), configuration_from_document(parsed, table)
    except (ValueError, PbxfwError) as exc:
        raise ValidationError(
            FieldError("applied_document", f"the stored applied configuration is unreadable: {exc}")
        ) from None


def applied_services(repo: Repository) -> Configuration:
    """The applied configuration without its networks (what ``services()`` needs).

    Before the first apply: the stored services and settings. The applied
    document is read as :func:`applied_configuration` reads it, its networks left out.
    """
    document = repo.get_meta("applied_document")
    if document is None or repo.get_meta("applied_revision") is None:
        return Configuration((), tuple(repo.custom_services()), repo.settings())
    try:
        parsed = json.loads(document)
        if isinstance(parsed, dict):
            parsed = {**parsed, "networks": []}
        return configuration_from_document(parsed)
    except (ValueError, PbxfwError) as exc:
        raise ValidationError(
            FieldError("applied_document", f"the stored applied configuration is unreadable: {exc}")
        ) from None


def initial_document(repo: Repository) -> str:
    """What a rollback of the very first apply returns to: the same networks,
    with the firewall switched off (the kernel had no pbxfw table before)."""
    config = stored_configuration(repo)
    off = Configuration(
        config.networks,
        config.custom_services,
        config.settings.updated({"firewall_enabled": False}),
    )
    return json.dumps(document_of(off), sort_keys=True)
