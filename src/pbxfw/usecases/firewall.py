"""Compile, apply, confirm, roll back: the configuration reaches the kernel.

Changes are *staged*: editing networks or settings changes the stored
configuration; ``apply`` compiles it (with the active bans) and loads it as
one nftables transaction, and records it as the *applied* configuration,
which the agent keeps in the kernel from then on. With a confirmation
window the previous table is restored by a detached watchdog unless
``confirm`` comes in time; after such a rollback the stored configuration
returns to the last confirmed one, and the rejected one is kept in a file
(``rejected-config.json``) that ``pbxfw import`` takes back.

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

State in the database (meta): ``applied_document`` and ``applied_revision``
(what the agent enforces), ``confirmed_document`` (what a rollback returns
to), ``pending_change:<netns>`` (the open confirmation window: its token and
where its kernel state lives).
"""

from __future__ import annotations

import json
import logging
import os
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pbxfw.compiler import BanElement, compile_ruleset
from pbxfw.domain.bans import Ban
from pbxfw.domain.configuration import Configuration
from pbxfw.domain.decision import check
from pbxfw.errors import (
    ConflictError,
    FieldError,
    LockoutError,
    NotFoundError,
    PbxfwError,
    StorageError,
    ValidationError,
)
from pbxfw.kernel import Backend, NftBackend
from pbxfw.kernel.confirm import (
    apply_with_confirm,
    expire,
    last_rollback,
    locked,
    namespace_dir,
    supersede,
)
from pbxfw.kernel.confirm import confirm as confirm_change
from pbxfw.kernel.confirm import pending as pending_change
from pbxfw.kernel.confirm import rollback as rollback_change
from pbxfw.storage.db import database_url
from pbxfw.storage.repository import Repository, Store
from pbxfw.usecases.config import (
    document_of,
    parse_document,
    replace_configuration,
    stored_configuration,
)

__all__ = [
    "AdminAccess",
    "ApplyResult",
    "FirewallApplier",
    "FirewallService",
    "RollbackRecord",
    "ban_elements",
    "carry_rollbacks",
    "configuration_from_document",
    "describe_changes",
    "settle_rollbacks",
]

log = logging.getLogger("pbxfw.firewall")


@dataclass(frozen=True, slots=True)
class AdminAccess:
    """Where the administrator is: their address and the service they use."""

    address: str
    service: str

    @classmethod
    def from_ssh_client(cls, value: str | None, config: Configuration) -> AdminAccess | None:
        """From ``SSH_CLIENT`` ("ADDR PORT SERVERPORT"): the service owning SERVERPORT."""
        if not value:
            return None
        parts = value.split()
        if not parts:
            return None
        service = "ssh"
        if len(parts) >= 3 and parts[2].isdigit():
            port = int(parts[2])
            for svc in config.services():
                if any(r.protocol == "tcp" and r.first <= port <= r.last for r in svc.ports):
                    service = svc.key
                    break
        return cls(parts[0], service)


@dataclass(frozen=True, slots=True)
class RollbackRecord:
    """A rollback that happened: when (epoch seconds), why, and the file
    keeping the rejected configuration (None if it was never carried)."""

    time: float
    reason: str
    config: Path | None


@dataclass(frozen=True, slots=True)
class ApplyResult:
    revision: int
    ruleset: str
    pending: dict[str, object] | None
    netns: str | None


def ban_elements(bans: list[Ban], now: float) -> list[BanElement]:
    """Kernel elements for ``bans``, each with its remaining lifetime."""
    elements = []
    for b in bans:
        left = b.remaining(now)
        if left > 0:
            elements.append(BanElement(b.subnet, b.jail, left))
    return elements


def configuration_from_document(document: dict[str, Any]) -> Configuration:
    parsed = parse_document(document, stored=True)
    return Configuration(tuple(parsed.networks), tuple(parsed.custom_services), parsed.settings)


class FirewallService:
    """The configuration → kernel use cases, for one network namespace at a time."""

    def __init__(
        self,
        store: Store,
        state_dir: str | os.PathLike[str],
        *,
        backend: Callable[[str | None], Backend] = NftBackend,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.store = store
        self.state_dir = Path(state_dir)
        self.backend = backend
        self.clock = clock

    # -- compiling ------------------------------------------------------------
    def compile(self, config: Configuration | None = None, with_bans: bool = True) -> str:
        """The ruleset for ``config`` (default: the stored one) and the active bans."""
        with self.store.read() as repo:
            config = config or stored_configuration(repo)
            bans = repo.bans(now=self.clock()) if with_bans else []
        return compile_ruleset(config, ban_elements(bans, self.clock()))

    def stored_revision(self) -> int:
        """The revision of the stored configuration (one small query)."""
        with self.store.read() as repo:
            return repo.revision()

    def applied_revision(self) -> int | None:
        """The revision last applied (None: never), without loading it."""
        with self.store.read() as repo:
            value = repo.get_meta("applied_revision")
        return None if value is None else int(value)

    def applied_configuration(self) -> tuple[int | None, Configuration]:
        """(applied revision, configuration) the kernel should hold.

        Before the first apply: (None, the stored configuration).
        """
        with self.store.read() as repo:
            return _applied(repo)

    def admin_access(self, ssh_client: str | None) -> AdminAccess | None:
        """:meth:`AdminAccess.from_ssh_client` against the applied configuration's services.

        Reads nothing without ``ssh_client``; with it, only the services and
        settings of the applied configuration (the port the administrator
        came in through is served by the rules the kernel holds), never its
        networks: 10,000 of them would cost ``pbxfw apply`` most of a second.
        """
        if not ssh_client or not ssh_client.split():
            return None
        with self.store.read() as repo:
            return AdminAccess.from_ssh_client(ssh_client, _applied_services(repo))

    # -- applying -------------------------------------------------------------
    def check_lockout(self, config: Configuration, admin: AdminAccess | None) -> None:
        """Refuse a configuration that would block ``admin`` from the service in use."""
        if admin is None or not config.settings.firewall_enabled:
            return
        try:
            decision = check(config, admin.address, admin.service)
        except ValidationError:
            return  # an address we cannot read is not one we can protect
        if decision.verdict == "block":
            by = (
                f'network "{decision.network.name}" ({decision.network.subnet})'
                if decision.network
                else "no network containing it"
            )
            raise LockoutError(
                f"applying would block your own address {admin.address} from "
                f"{admin.service}: {by} blocks it. Allow {admin.service} for your address "
                "first, or apply with --force if you really mean it"
            )

    def apply(
        self,
        netns: str | None = None,
        *,
        confirm_seconds: float | None = None,
        admin: AdminAccess | None = None,
        force: bool = False,
    ) -> ApplyResult:
        """Apply the stored configuration (one kernel transaction).

        With ``confirm_seconds`` the previous table comes back by itself
        unless ``confirm`` is called in time. Raises LockoutError (before
        touching anything) when ``admin`` would be blocked, unless ``force``;
        KernelError when nftables refuses (the running table is unchanged).

        It loads the stored configuration as it is: it never reverts it
        first. If a rollback has not reached storage yet, this carries it
        and raises ConflictError without applying anything: the stored
        configuration just changed under the caller (see the module doc).
        The whole sequence holds the namespace's confirmation lock, so no
        rollback happens between reading the configuration and recording it.
        """
        with locked(self.state_dir, netns):
            carried = settle_rollbacks(self.store)
            if carried:
                raise _rolled_back_under_you(carried, self.stored_revision())
            with self.store.read() as repo:
                config = stored_configuration(repo)
                revision = repo.revision()
                bans = repo.bans(now=self.clock())
            if not force:
                self.check_lockout(config, admin)
            text = compile_ruleset(config, ban_elements(bans, self.clock()))
            backend = self.backend(netns)
            pending = None
            if confirm_seconds:
                hook, hook_env = self._after_rollback()
                change = apply_with_confirm(
                    backend,
                    text,
                    confirm_seconds,
                    self.state_dir,
                    after_rollback=hook,
                    hook_env=hook_env,
                )
                pending = change.as_json()
            else:
                backend.apply(text)
                # A window still open is over: this apply is the confirmed one,
                # and no watchdog may bring the older snapshot back over it.
                supersede(self.state_dir, netns)
            document = json.dumps(document_of(config), sort_keys=True)
            with self.store.write() as repo:
                repo.set_meta("applied_document", document)
                repo.set_meta("applied_revision", str(revision))
                if pending is None:
                    repo.set_meta("confirmed_document", document)
                    repo.set_meta(_pending_key(netns), None)
                else:
                    if repo.get_meta("confirmed_document") is None:
                        # First apply ever with a window: a rollback returns to
                        # what was stored before it, i.e. the defaults of init.
                        repo.set_meta("confirmed_document", _initial_document(repo))
                    entry = {
                        "token": str(pending["token"]),
                        "state_dir": os.path.abspath(self.state_dir),
                        "netns": netns,
                    }
                    repo.set_meta(_pending_key(netns), json.dumps(entry, sort_keys=True))
        return ApplyResult(revision, text, pending, netns)

    def _after_rollback(self) -> tuple[list[str], dict[str, str]]:
        """The command the watchdog runs after a restore, and its environment:
        this module's ``main`` on this database (nothing for an in-memory one)."""
        url = self.store.engine.url
        if url.get_backend_name() == "sqlite" and url.database in (None, "", ":memory:"):
            return [], {}
        return (
            [sys.executable, "-m", "pbxfw.usecases.firewall"],
            {"PBXFW_DB": url.render_as_string(hide_password=False)},
        )

    def confirm(self, netns: str | None = None) -> dict[str, object] | None:
        """Keep the pending change. None when nothing was pending — or when
        the confirmation came too late: the change is then rolled back, if
        the watchdog has not done it yet, and carried into storage."""
        with locked(self.state_dir, netns):
            change = confirm_change(self.state_dir, netns)
            settle_rollbacks(self.store)
            if change is not None:
                with self.store.write() as repo:
                    entry = _entry(_pending_key(netns), repo.get_meta(_pending_key(netns)))
                    if entry is not None and entry.token == change.token:
                        repo.set_meta("confirmed_document", repo.get_meta("applied_document"))
                        repo.set_meta(_pending_key(netns), None)
        return None if change is None else change.as_json()

    def rollback(self, netns: str | None = None) -> Path | None:
        """Undo the pending change now; returns the rejected configuration's
        file (None when no rollback was carried into storage by this call)."""
        with locked(self.state_dir, netns):
            rollback_change(self.state_dir, netns)
            return settle_rollbacks(self.store).get(netns)

    def pending(self, netns: str | None = None) -> dict[str, object] | None:
        change = pending_change(self.state_dir, netns)
        return None if change is None else change.as_json()

    def last_rollback(self, netns: str | None = None) -> RollbackRecord | None:
        """The last rollback in ``netns``, or None."""
        record = last_rollback(self.state_dir, netns)
        if record is None:
            return None
        path = namespace_dir(self.state_dir, netns) / REJECTED_CONFIG
        when = record.get("time")
        return RollbackRecord(
            float(when) if isinstance(when, int | float) else 0.0,
            str(record.get("reason") or ""),
            path if path.exists() else None,
        )

    def reconcile(self, netns: str | None = None) -> Path | None:
        """Carry what the kernel did into storage: an expired change is rolled
        back, and a rollback not yet carried returns the stored
        configuration to the last confirmed one (:func:`settle_rollbacks`).

        Returns the rejected configuration's file for ``netns`` when this
        call carried its rollback, else None. Idempotent; cheap enough for
        the agent to call every tick.
        """
        return settle_rollbacks(self.store).get(netns)


# -- pending changes in storage: carried exactly once --------------------------------------

#: The file beside the kernel state that keeps the rejected configuration.
REJECTED_CONFIG = "rejected-config.json"
_PENDING_PREFIX = "pending_change:"


def _pending_key(netns: str | None) -> str:
    return f"{_PENDING_PREFIX}{netns or ''}"


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


def _entry(key: str, value: str | None) -> _Entry | None:
    if value is None:
        return None
    try:
        data = json.loads(value)
        netns = data.get("netns")
        return _Entry(key, value, str(data["token"]), str(data["state_dir"]), netns)
    except (ValueError, KeyError, TypeError, AttributeError):
        return None  # not ours to read (an older format): never matches a rollback


def _entries(repo: Repository) -> list[_Entry]:
    found = (_entry(k, v) for k, v in sorted(repo.meta_items(_PENDING_PREFIX).items()))
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


def _rolled_back_under_you(carried: dict[str | None, Path], revision: int) -> ConflictError:
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


def _applied(repo: Repository) -> tuple[int | None, Configuration]:
    document = repo.get_meta("applied_document")
    revision = repo.get_meta("applied_revision")
    if document is None or revision is None:
        return None, stored_configuration(repo)
    try:
        return int(revision), configuration_from_document(json.loads(document))
    except (ValueError, PbxfwError) as exc:
        raise ValidationError(
            FieldError("applied_document", f"the stored applied configuration is unreadable: {exc}")
        ) from None


def _applied_services(repo: Repository) -> Configuration:
    """The applied configuration without its networks (what ``services()`` needs).

    Before the first apply: the stored services and settings. The applied
    document is read as :func:`_applied` reads it, its networks left out.
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


def _initial_document(repo: Repository) -> str:
    """What a rollback of the very first apply returns to: the same networks,
    with the firewall switched off (the kernel had no pbxfw table before)."""
    config = stored_configuration(repo)
    off = Configuration(
        config.networks,
        config.custom_services,
        config.settings.updated({"firewall_enabled": False}),
    )
    return json.dumps(document_of(off), sort_keys=True)


def describe_changes(before: dict[str, Any] | None, after: dict[str, Any]) -> list[str]:
    """What applying ``after`` changes compared with ``before`` (two documents), in words."""
    if before is None:
        return ["Nothing was applied yet: the whole configuration will be loaded."]
    lines: list[str] = []
    old = {n["subnet"]: n for n in before.get("networks", [])}
    new = {n["subnet"]: n for n in after.get("networks", [])}
    for subnet, n in new.items():
        if subnet not in old:
            allowed = ", ".join(k for k, v in n["services"].items() if v == "allow") or "nothing"
            lines.append(f'add network "{n["name"]}" {subnet}: allows {allowed}')
            continue
        was = old[subnet]
        changes = [
            f"{k} {was['services'].get(k, 'block')} → {v}"
            for k, v in n["services"].items()
            if was["services"].get(k, "block") != v
        ]
        for flag in ("local", "never_block"):
            if was.get(flag) != n.get(flag):
                changes.append(f"{flag.replace('_', '-')} {'on' if n.get(flag) else 'off'}")
        if was.get("name") != n.get("name"):
            changes.append(f'renamed from "{was["name"]}"')
        if changes:
            lines.append(f'network "{n["name"]}" {subnet}: ' + ", ".join(changes))
    for subnet, gone in old.items():
        if subnet not in new:
            lines.append(f'remove network "{gone["name"]}" {subnet}')
    old_services = {s["key"]: s for s in before.get("services", [])}
    new_services = {s["key"]: s for s in after.get("services", [])}
    for key in new_services.keys() - old_services.keys():
        lines.append(f"add service {key}")
    for key in old_services.keys() - new_services.keys():
        lines.append(f"remove service {key}")
    for key, value in after.get("settings", {}).items():
        if before.get("settings", {}).get(key) != value:
            lines.append(f"setting {key}: {before.get('settings', {}).get(key)} → {value}")
    return lines


class FirewallApplier:
    """The web page's Apply button for one network namespace (pbxfw.web.deps.Applier)."""

    def __init__(self, firewall: FirewallService, netns: str | None = None) -> None:
        self.firewall = firewall
        self.netns = netns

    def preview(self) -> str:
        # What is shown is what Apply will load: a rollback is carried first.
        self.firewall.reconcile(self.netns)
        with self.firewall.store.read() as repo:
            applied = repo.get_meta("applied_document")
            stored = document_of(stored_configuration(repo))
        before = None if applied is None else json.loads(applied)
        lines = describe_changes(before, json.loads(json.dumps(stored, sort_keys=True)))
        return "\n".join(lines) if lines else "No changes since the last apply."

    def apply(self, confirm_seconds: int | None, admin_address: str | None) -> dict[str, Any]:
        admin = AdminAccess(admin_address, "web") if admin_address else None
        result = self.firewall.apply(self.netns, confirm_seconds=confirm_seconds, admin=admin)
        if result.pending:
            return {"status": "pending", "deadline": result.pending["deadline"]}
        return {"status": "applied", "deadline": None}

    def confirm(self) -> dict[str, Any]:
        change = self.firewall.confirm(self.netns)
        if change is None:
            raise NotFoundError("nothing is waiting for confirmation (it may have rolled back)")
        return {"status": "confirmed"}

    def rollback(self) -> dict[str, Any]:
        self.firewall.rollback(self.netns)
        return {"status": "rolled_back"}

    def pending(self) -> dict[str, Any] | None:
        self.firewall.reconcile(self.netns)
        change = self.firewall.pending(self.netns)
        if change is None:
            return None
        return {"status": "pending", "deadline": change["deadline"]}


def main() -> int:
    """``python -m pbxfw.usecases.firewall``: carry rollbacks into the database
    named by ``PBXFW_DB`` (the rollback watchdog runs it right after a restore)."""
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s carry[%(process)d] %(levelname)s %(message)s"
    )
    try:
        store = Store.open(database_url(None))
        try:
            settle_rollbacks(store)
        finally:
            store.close()
    except PbxfwError as exc:
        log.error("cannot carry the rollback into storage: %s", exc)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
