"""Compile, apply, confirm, roll back: the configuration reaches the kernel.

Changes are *staged*: editing networks or settings changes the stored
configuration; ``apply`` compiles it (with the active bans) and loads it as
one nftables transaction, and records it as the *applied* configuration,
which the agent keeps in the kernel from then on. With a confirmation
window the previous table is restored by a detached watchdog unless
``confirm`` comes in time; after such a rollback the stored configuration
returns to the last confirmed one, and the rejected one is kept in a file
(``rejected-config.json``) that ``pbxfw import`` takes back.

What the database keeps about it (the applied, confirmed and pending
configurations) and the rule that carries a rollback into storage exactly
once are in :mod:`pbxfw.usecases.applied`; the web page's Apply button
(``FirewallApplier``, ``describe_changes``) is in :mod:`pbxfw.usecases.applier`.
Their public names stay importable from here.
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
from typing import TYPE_CHECKING

from pbxfw.bulk import gc_paused
from pbxfw.compiler import BanElement, compile_ruleset
from pbxfw.domain.bans import Ban
from pbxfw.domain.configuration import Configuration
from pbxfw.domain.decision import PolicyIndex, check
from pbxfw.domain.sites import DEFAULT_SITE
from pbxfw.errors import LockoutError, PbxfwError, ValidationError
from pbxfw.kernel.backend import Backend
from pbxfw.kernel.confirm import (
    apply_with_confirm,
    last_rollback,
    locked,
    namespace_dir,
    supersede,
)
from pbxfw.kernel.confirm import confirm as confirm_change
from pbxfw.kernel.confirm import pending as pending_change
from pbxfw.kernel.confirm import rollback as rollback_change
from pbxfw.kernel.nft import NftBackend
from pbxfw.storage.db import database_url
from pbxfw.storage.repository import Store
from pbxfw.usecases.applied import (
    REJECTED_CONFIG,
    applied_configuration,
    applied_services,
    carry_rollbacks,
    configuration_from_document,
    initial_document,
    pending_entry,
    pending_key,
    rolled_back_under_you,
    settle_rollbacks,
)
from pbxfw.usecases.base import stored_configuration
from pbxfw.usecases.document import document_of

if TYPE_CHECKING:
    from pbxfw.usecases.applier import FirewallApplier, describe_changes

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

#: The environment variable naming the site (the CLI's ``--site``, the watchdog's carry).
SITE_ENV = "PBXFW_SITE"


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


class FirewallService:
    """The configuration → kernel use cases, for one network namespace at a time.

    Of one site's configuration: ``site``, else the store's own (``Store.site``);
    the applied, confirmed and pending state kept in the database is that
    site's (docs/fleet-sites.md).
    """

    def __init__(
        self,
        store: Store,
        state_dir: str | os.PathLike[str],
        *,
        backend: Callable[[str | None], Backend] = NftBackend,
        clock: Callable[[], float] = time.time,
        site: str | None = None,
    ) -> None:
        self.store = store if site is None else store.at_site(site)
        self.state_dir = Path(state_dir)
        self.backend = backend
        self.clock = clock

    def at_site(self, site: str) -> FirewallService:
        """The same service (state folder, backend, clock) for ``site``'s configuration."""
        return FirewallService(
            self.store, self.state_dir, backend=self.backend, clock=self.clock, site=site
        )

    # -- compiling ------------------------------------------------------------
    def compile(self, config: Configuration | None = None, with_bans: bool = True) -> str:
        """The ruleset for ``config`` (default: the stored one) and the active bans."""
        # A bulk step (10,000 networks): no cyclic collection while it runs.
        with gc_paused():
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
            return applied_configuration(repo)

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
            return AdminAccess.from_ssh_client(ssh_client, applied_services(repo))

    # -- applying -------------------------------------------------------------
    def check_lockout(
        self, config: Configuration, admin: AdminAccess | None, index: PolicyIndex | None = None
    ) -> None:
        """Refuse a configuration that would block ``admin`` from the service in use
        (``index``: ``PolicyIndex.of(config)`` if built already)."""
        if admin is None or not config.settings.firewall_enabled:
            return
        try:
            decision = check(config, admin.address, admin.service, index=index)
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
        # A bulk step: 10,000 networks become segments, intervals, text and
        # a document, objects without cycles; the cyclic collector would go
        # over them again and again (a tenth of `pbxfw apply`'s CPU time).
        with locked(self.state_dir, netns), gc_paused():
            carried = settle_rollbacks(self.store)
            if carried:
                raise rolled_back_under_you(carried, self.stored_revision())
            with self.store.read() as repo:
                config = stored_configuration(repo)
                revision = repo.revision()
                bans = repo.bans(now=self.clock())
            # One index of the 10,000 networks for the lockout check and the
            # compiler (none needed with the firewall off).
            index = PolicyIndex.of(config) if config.settings.firewall_enabled else None
            if not force:
                self.check_lockout(config, admin, index)
            text = compile_ruleset(config, ban_elements(bans, self.clock()), index=index)
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
                    repo.set_meta(pending_key(netns), None)
                else:
                    if repo.get_meta("confirmed_document") is None:
                        # First apply ever with a window: a rollback returns to
                        # what was stored before it, i.e. the defaults of init.
                        repo.set_meta("confirmed_document", initial_document(repo))
                    entry = {
                        "token": str(pending["token"]),
                        "state_dir": os.path.abspath(self.state_dir),
                        "netns": netns,
                    }
                    repo.set_meta(pending_key(netns), json.dumps(entry, sort_keys=True))
        return ApplyResult(revision, text, pending, netns)

    def _after_rollback(self) -> tuple[list[str], dict[str, str]]:
        """The command the watchdog runs after a restore, and its environment:
        this module's ``main`` on this database (nothing for an in-memory one)."""
        url = self.store.engine.url
        if url.get_backend_name() == "sqlite" and url.database in (None, "", ":memory:"):
            return [], {}
        return (
            [sys.executable, "-m", "pbxfw.usecases.firewall"],
            {"PBXFW_DB": url.render_as_string(hide_password=False), SITE_ENV: self.store.site},
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
                    entry = pending_entry(pending_key(netns), repo.get_meta(pending_key(netns)))
                    if entry is not None and entry.token == change.token:
                        repo.set_meta("confirmed_document", repo.get_meta("applied_document"))
                        repo.set_meta(pending_key(netns), None)
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


def __getattr__(name: str) -> object:
    # The Apply button's names, importable from here as before; imported on
    # first use (applier imports this module, and `pbxfw apply` needs neither).
    if name in ("FirewallApplier", "describe_changes"):
        from pbxfw.usecases import applier

        return getattr(applier, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def main() -> int:
    """``python -m pbxfw.usecases.firewall``: carry rollbacks into the database
    named by ``PBXFW_DB``, of the site ``PBXFW_SITE`` (the rollback watchdog
    runs it right after a restore)."""
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s carry[%(process)d] %(levelname)s %(message)s"
    )
    try:
        store = Store.open(database_url(None)).at_site(os.environ.get(SITE_ENV) or DEFAULT_SITE)
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
