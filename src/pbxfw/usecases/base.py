"""The base of :class:`~pbxfw.usecases.config.ConfigService`: the store, the
write unit of work of an edit, and the reads every noun shares.

Each method is one unit of work: it validates everything first, then writes in
one transaction that also bumps the configuration revision; on any error
nothing is stored.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from contextlib import contextmanager

from pbxfw.domain.configuration import Configuration
from pbxfw.domain.decision import ActiveBan, Decision, check
from pbxfw.storage.repository import Repository, Store

__all__ = ["ConfigBase", "stored_configuration"]


def stored_configuration(repo: Repository) -> Configuration:
    """Inside a unit of work: the stored configuration, normalised (the only way to read it)."""
    return repo.configuration().normalised()


class ConfigBase:
    """One Store, the edit unit of work and the shared reads; the nouns build on it.

    Every read and write is the configuration of one site: ``site`` if given,
    else the store's own (``Store.site``, ``default`` unless the store was
    made with ``Store.at_site``). A site that does not exist raises
    ``UnknownSiteError`` (a ``ValidationError`` on ``site``) at the first
    unit of work, before anything is stored.
    """

    def __init__(self, store: Store, site: str | None = None) -> None:
        self.store = store if site is None else store.at_site(site)

    @property
    def site(self) -> str:
        """The site whose configuration this service reads and writes."""
        return self.store.site

    @contextmanager
    def _edit(
        self, *, via: str | None = None, note: str | None = None, settings_only: bool = False
    ) -> Iterator[Repository]:
        """The write unit of work of an edit, made on top of what the kernel holds.

        A change the kernel rolled back (or whose confirmation window ran
        out) is carried into storage first, so the edit lands on the last
        confirmed configuration and is what the next apply loads
        (pbxfw.usecases.applied, docs/decisions.md "Apply and rollback").

        An edit that bumps the configuration revision is recorded in the
        history in the same transaction (usecases.history): by the actor the
        adapter named (usecases.actor), through ``via`` when given (an
        import), its summary led by ``note`` when given (a restore);
        ``settings_only``: the edit changes settings alone (cheaper to record).
        """
        from pbxfw.usecases.actor import current_actor
        from pbxfw.usecases.applied import carry_rollbacks, settle_rollbacks
        from pbxfw.usecases.history import baseline_of, record_change

        settle_rollbacks(self.store)
        with self.store.write() as repo:
            carry_rollbacks(repo)  # one that happened a moment ago
            before = repo.get_meta("revision")  # None before `pbxfw init`
            baseline = baseline_of(repo)
            yield repo
            if repo.get_meta("revision") != before:
                actor = current_actor()
                actor = actor if via is None else actor.through(via)
                record_change(
                    repo, actor, baseline=baseline, note=note, settings_only=settings_only
                )

    # -- reads --------------------------------------------------------------
    def configuration(self) -> Configuration:
        with self.store.read() as repo:
            return stored_configuration(repo)

    def revision(self) -> int:
        with self.store.read() as repo:
            return repo.revision()

    def unapplied(self) -> bool:
        """True when the stored configuration changed since the last apply."""
        with self.store.read() as repo:
            applied = repo.get_meta("applied_revision")
            return applied is None or int(applied) != repo.revision()

    def check(self, address: str, service: str, bans: Iterable[ActiveBan] = ()) -> Decision:
        return check(self.configuration(), address, service, bans=bans)
