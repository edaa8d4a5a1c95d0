"""The site the page works on, chosen per browser (docs/web.md, "Sites").

A *site* is one configuration (networks, services, settings). The page
works on one site at a time: the one this browser chose last, kept in the
cookie ``pbxfw_site``. How a request names its site, first match wins:

1. a form post's hidden ``site`` field: a form works on the site it was
   shown for, even when another tab of the same browser switched meanwhile;
2. the query parameter ``site`` (the header's selector, a shared link);
3. the cookie;
4. the server's own site (``pbxfw serve`` with ``--site`` or ``PBXFW_SITE``;
   ``default`` unless told).

A site named by the form or the query that does not exist is an error page
(404; nothing changes); a cookie naming a site removed since falls back to
the server's own site. Whatever a request resolved is what the browser keeps: the
response sets the cookie when it differs (``common.render`` and
``common.redirect``). With one site (every single-PBX install) nothing
changes: no selector, no hidden field, no cookie.
"""

from __future__ import annotations

import copy
from typing import Annotated

from fastapi import Depends, HTTPException, Request, status

from pbxfw.usecases.sites import SiteService
from pbxfw.web.deps import ContextDep, WebContext

__all__ = [
    "DEFAULT_SITE",
    "SITE_COOKIE",
    "SiteContext",
    "chosen_site",
    "home_site",
    "page_context",
    "site_context",
    "site_names",
]

SITE_COOKIE = "pbxfw_site"
DEFAULT_SITE = "default"


def site_names(context: WebContext) -> list[str]:
    """Every site's name, ``default`` first, then by name."""
    names = [site.name for site in SiteService(context.store).list()]
    return sorted(names, key=lambda name: (name != DEFAULT_SITE, name))


def home_site(context: WebContext) -> str:
    """The site a browser starts on: the server's own (``pbxfw --site S serve``,
    ``default`` unless told)."""
    return context.store.site


def _site_view(context: WebContext, site: str) -> WebContext:
    """``context`` with its configuration and applier bound to ``site``.

    The rest (store, users, bans, signer) is fleet-wide and shared.
    """
    if site == context.store.site and context.applier_for is None:
        return context
    view = copy.copy(context)
    view.config = context.config_for(site)
    view.applier = context.applier_for(site) if context.applier_for else None
    view.cache = {}
    return view


async def page_context(request: Request, context: ContextDep) -> WebContext:
    """The request's :class:`WebContext`, bound to the site the request works on.

    Only for a logged-in administrator: an anonymous request is left to the
    route's own session check (the login page, or 401), so that nobody
    learns which sites exist without logging in.
    """
    session = context.session_of(request)
    if session is None or not session.user:
        return context
    names = site_names(context)
    request.state.pbxfw_sites = names
    wanted: str | None = None
    if request.method == "POST":
        posted = (await request.form()).get("site")
        wanted = posted if isinstance(posted, str) and posted else None
    if wanted is None:
        wanted = request.query_params.get("site") or None
    if wanted is not None and wanted not in names:
        raise HTTPException(
            status.HTTP_404_NOT_FOUND,
            f"There is no site named “{wanted}” (it may have been removed). "
            "Choose a site in the list at the top; nothing was changed.",
        )
    if wanted is None:
        kept = request.cookies.get(SITE_COOKIE)
        wanted = kept if kept in names else home_site(context)
    request.state.pbxfw_site = wanted
    request.state.pbxfw_view = view = _site_view(context, wanted)
    return view


#: The context of a configuration page: ``config`` and ``applier`` of the chosen site.
SiteContext = Annotated[WebContext, Depends(page_context)]


def chosen_site(request: Request) -> tuple[str, list[str]]:
    """The site this request resolved and every site's name (``default`` alone if
    the route does not work on a site)."""
    # page_context leaves them in request.state for render() and redirect().
    site: str = getattr(request.state, "pbxfw_site", DEFAULT_SITE)
    names: list[str] = getattr(request.state, "pbxfw_sites", None) or [DEFAULT_SITE]
    return site, names


def site_context(request: Request) -> WebContext:
    """The context ``page_context`` bound to the request's site, else the application's."""
    view: WebContext | None = getattr(request.state, "pbxfw_view", None)
    if view is None:
        view = request.app.state.pbxfw
    return view
