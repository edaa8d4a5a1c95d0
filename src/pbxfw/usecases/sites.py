"""Sites: list, add, remove (``pbxfw site``, ``/api/v1/sites``; docs/fleet-sites.md).

A site is one configuration; :meth:`SiteService.add` makes its row and its
starting configuration (the revision counter and the permanent networks, as
``pbxfw init`` makes them for ``default``) in one transaction;
:meth:`SiteService.remove` deletes the row and the site's configuration,
and refuses ``default`` and a site that still has nodes.

The configuration of a site is read and written with ``ConfigService(store,
site=NAME)`` and ``FirewallService(..., site=NAME)`` (or a store bound with
``store.at_site(NAME)``).
"""

from __future__ import annotations

import builtins
import time
from collections.abc import Callable

from pbxfw.domain.sites import DEFAULT_SITE, Site, UnknownSiteError, validate_site_name
from pbxfw.errors import ConflictError, FieldError, NotFoundError, ValidationError
from pbxfw.storage.repository import Repository, Store
from pbxfw.storage.sites import add_site, nodes_of_site, remove_site, site, sites

__all__ = ["SiteService"]


class SiteService:
    """The sites of one database (one unit of work per call)."""

    def __init__(self, store: Store, clock: Callable[[], float] = time.time) -> None:
        self.store = store.at_site(DEFAULT_SITE)
        self.clock = clock

    def list(self) -> list[Site]:
        """Every site, by name."""
        with self.store.read() as repo:
            return sites(repo)

    def names(self) -> builtins.list[str]:
        """Every site's name, sorted."""
        return [site.name for site in self.list()]

    def get(self, name: str, field: str = "site") -> Site:
        """The site ``name``; ``UnknownSiteError`` on ``field`` when there is none."""
        validate_site_name(name, field)
        with self.store.read() as repo:
            found = site(repo, name)
        if found is None:
            raise UnknownSiteError(name, field)
        return found

    def add(self, name: str) -> Site:
        """Make the site ``name`` with its starting configuration (what ``pbxfw
        init`` makes): ``ConflictError`` if it exists."""
        from pbxfw.usecases.actor import current_actor
        from pbxfw.usecases.history import record_change
        from pbxfw.usecases.networks import start_configuration

        validate_site_name(name, "name")
        new = Site(name, self.clock())
        with self.store.write() as repo:
            if site(repo, name) is not None:
                raise ConflictError(FieldError("name", f"a site named {name!r} exists already"))
            add_site(repo, new)
            start_configuration(Repository(repo.session, name))
            # The site's history starts with its starting configuration.
            record_change(Repository(repo.session, name), current_actor().through("fleet"))
        return new

    def remove(self, name: str) -> None:
        """Delete the site ``name`` and its whole configuration.

        Refuses ``default`` (a single PBX's site, always there) and a site
        with nodes (``pbxfw node list``: stop their agents and ``pbxfw node
        rm`` them, or move them with ``pbxfw agent --site``).
        ``NotFoundError`` when there is no such site.
        """
        validate_site_name(name, "name")
        if name == DEFAULT_SITE:
            raise ValidationError(
                FieldError("name", "the site 'default' cannot be removed: a single PBX uses it")
            )
        with self.store.write() as repo:
            if site(repo, name) is None:
                raise NotFoundError(f"there is no site {name!r}; see `pbxfw site list`")
            nodes = nodes_of_site(repo, name)
            if nodes:
                shown = ", ".join(nodes[:5]) + (", …" if len(nodes) > 5 else "")
                raise ValidationError(
                    FieldError(
                        "name",
                        f"the site {name!r} has {len(nodes)} node(s) ({shown}); stop their "
                        "agents and `pbxfw node rm` them (or start them with another "
                        "--site) first",
                    )
                )
            remove_site(repo, name)
