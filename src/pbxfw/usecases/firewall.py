"""Compile, apply, confirm, roll back: the configuration reaches the kernel.

Changes are *staged*: editing networks or settings changes the stored
configuration; ``apply`` compiles it (with the active bans) and loads it as
one nftables transaction, and records it as the *applied* configuration,
which the agent keeps in the kernel from then on. With a confirmation
window the previous table is restored by a detached watchdog unless
``confirm`` comes in time; after such a rollback the stored configuration
returns to the last confirmed one, and the rejected one is kept in a file
(``rejected-config.json``) that ``pbxfw import`` takes back.

State in the database (meta): ``applied_document`` and ``applied_revision``
(what the agent enforces), ``confirmed_document`` (what a rollback returns
to), ``pending_token`` (the open confirmation window, if any).
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pbxfw.compiler import BanElement, compile_ruleset
from pbxfw.domain.bans import Ban
from pbxfw.domain.configuration import Configuration
from pbxfw.domain.decision import check
from pbxfw.errors import FieldError, LockoutError, NotFoundError, PbxfwError, ValidationError
from pbxfw.kernel import NftBackend
from pbxfw.kernel.confirm import (
    apply_with_confirm,
    last_rollback,
    namespace_dir,
)
from pbxfw.kernel.confirm import confirm as confirm_change
from pbxfw.kernel.confirm import pending as pending_change
from pbxfw.kernel.confirm import rollback as rollback_change
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
    "ban_elements",
    "configuration_from_document",
    "describe_changes",
]


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
        backend: Callable[[str | None], NftBackend] = NftBackend,
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
        """
        self.reconcile(netns)
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
            change = apply_with_confirm(backend, text, confirm_seconds, self.state_dir)
            pending = change.as_json()
        else:
            backend.apply(text)
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
                repo.set_meta(_pending_key(netns), str(pending["token"]))
        return ApplyResult(revision, text, pending, netns)

    def confirm(self, netns: str | None = None) -> dict[str, object] | None:
        """Keep the pending change. None when nothing was pending (then a
        rollback that already happened is carried into storage)."""
        change = confirm_change(self.state_dir, netns)
        if change is None:
            self.reconcile(netns)
        with self.store.write() as repo:
            token = repo.get_meta(_pending_key(netns))
            if change is not None and token == change.token:
                repo.set_meta("confirmed_document", repo.get_meta("applied_document"))
            repo.set_meta(_pending_key(netns), None)
        return None if change is None else change.as_json()

    def rollback(self, netns: str | None = None) -> Path | None:
        """Undo the pending change now; returns the rejected configuration's file."""
        rollback_change(self.state_dir, netns)
        return self.reconcile(netns)

    def pending(self, netns: str | None = None) -> dict[str, object] | None:
        change = pending_change(self.state_dir, netns)
        return None if change is None else change.as_json()

    def reconcile(self, netns: str | None = None) -> Path | None:
        """After the kernel rolled back (watchdog or ``rollback``), roll the
        stored configuration back to the last confirmed one.

        The rejected configuration is written to ``rejected-config.json`` in
        the state folder and its path returned; None when there was nothing
        to do. Idempotent; cheap enough for the agent to call every tick.
        """
        record = last_rollback(self.state_dir, netns)
        if record is None:
            return None
        # The agent calls this every tick, and the record of the last rollback
        # stays on disk: look in a read transaction first, write only when the
        # rollback is one not yet carried into storage.
        with self.store.read() as repo:
            if repo.get_meta(_pending_key(netns)) != record.get("token"):
                return None
        with self.store.write() as repo:
            token = repo.get_meta(_pending_key(netns))
            if token is None or record.get("token") != token:
                return None
            rejected = document_of(stored_configuration(repo))
            confirmed = repo.get_meta("confirmed_document")
            repo.set_meta(_pending_key(netns), None)
            path = namespace_dir(self.state_dir, netns) / "rejected-config.json"
            path.write_text(json.dumps(rejected, indent=2, ensure_ascii=False) + "\n")
            if confirmed is not None:
                replace_configuration(repo, parse_document(json.loads(confirmed), stored=True))
                repo.set_meta("applied_document", confirmed)
                repo.set_meta("applied_revision", str(repo.revision()))
        return path


def _pending_key(netns: str | None) -> str:
    return f"pending_token:{netns or ''}"


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
