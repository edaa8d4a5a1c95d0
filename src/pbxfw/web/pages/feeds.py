"""The Feeds page (issue 17): the blocklist feeds of the site and what each PBX did with them.

A row per feed: where it comes from, how often it is fetched, what it blocks,
and per PBX (node) the last fetch, the entries loaded, the entries refused
(by reason), the next fetch and the last error; a list held back because it
shrank too much is a warning. Forms: add a feed, ask for a fetch now (one feed
or all), remove a feed. A feed change needs no apply: the agents read the
feeds every few seconds (usecases/feeds.py). Header values (API keys) are
never shown.
"""

from __future__ import annotations

from collections.abc import Mapping

from fastapi import Request, status
from fastapi.responses import HTMLResponse, Response

from pbxfw.domain.feeds import FEED_FORMATS, every_text
from pbxfw.errors import PbxfwError, ValidationError
from pbxfw.usecases.feeds import FeedService, FeedView
from pbxfw.web.deps import AdminSession, WebContext
from pbxfw.web.pages.common import CsrfForm, form_errors, form_text, redirect, render
from pbxfw.web.pages.sites import SiteContext
from pbxfw.web.security import Session

__all__ = ["add_feed", "delete_feed", "feeds_page", "update_feed", "update_feeds"]

#: The add form's inputs, as the use case names its fields.
FIELDS = ("name", "url", "format", "every", "scope", "headers")


def _service(context: WebContext) -> FeedService:
    # The page's context is the chosen site's (pages/sites.py).
    return FeedService(context.config.store)


def _row(view: FeedView) -> dict[str, object]:
    """What the table shows of one feed: no header value, ever."""
    feed = view.feed
    return {
        "id": feed.id,
        "name": feed.name,
        "origin": feed.origin,
        "url": feed.url,
        "format": feed.format,
        "every": every_text(feed.every),
        "scope": ", ".join(feed.scope),
        "headers": [name for name, _ in feed.headers],
        "statuses": [
            {
                "node": s.node,
                "last_fetch": s.last_fetch,
                "next_fetch": s.next_fetch,
                "entries": s.entries,
                "refused": sum(s.refused.values()),
                "reasons": ", ".join(f"{k} {n}" for k, n in sorted(s.refused.items()) if n),
                "error": s.error,
                "held_back": s.held_back,
            }
            for s in view.statuses
        ],
    }


def _feeds_page(
    request: Request,
    context: WebContext,
    session: Session,
    *,
    new: Mapping[str, str] | None = None,
    errors: Mapping[str, str] | None = None,
) -> HTMLResponse:
    views = _service(context).views()
    return render(
        request,
        "feeds.html",
        {
            "feeds": [_row(v) for v in views],
            "formats": FEED_FORMATS,
            "new": dict(new or {"format": "plain", "every": "4h", "scope": "all"}),
            "errors": errors or {},
        },
        session=session,
        status_code=422 if errors else status.HTTP_200_OK,
    )


def feeds_page(request: Request, context: SiteContext, session: AdminSession) -> Response:
    return _feeds_page(request, context, session)


def add_feed(
    request: Request, context: SiteContext, session: AdminSession, form: CsrfForm
) -> Response:
    values = {k: form_text(form, k).strip() for k in FIELDS}
    headers = [line.strip() for line in values["headers"].splitlines() if line.strip()]
    try:
        feed = _service(context).add(
            values["name"],
            values["url"],
            format=values["format"] or "plain",
            every=values["every"] or "4h",
            scope=values["scope"] or "all",
            headers=headers,
        )
    except ValidationError as exc:
        found = form_errors(exc)
        # headers[2] → the headers box; anything else unforeseen stays visible.
        errors: dict[str, str] = {}
        for key, message in found.items():
            name = key.split("[", 1)[0]
            name = f"new_{name}" if name in FIELDS else "new_form"
            errors[name] = f"{errors[name]} {message}" if name in errors else message
        return _feeds_page(request, context, session, new=values, errors=errors)
    return redirect(
        request, "/feeds", f"Feed “{feed.name}” added: the agents fetch it at their next look."
    )


def update_feed(
    feed_id: int, request: Request, context: SiteContext, session: AdminSession, form: CsrfForm
) -> Response:
    try:
        (feed,) = _service(context).request_update(str(feed_id), now=context.clock())
    except PbxfwError as exc:
        return redirect(request, "/feeds", str(exc), "error")
    return redirect(request, "/feeds", f"Feed “{feed.name}” will be fetched at the next look.")


def update_feeds(
    request: Request, context: SiteContext, session: AdminSession, form: CsrfForm
) -> Response:
    chosen = _service(context).request_update(None, now=context.clock())
    text = f"{len(chosen)} feed{'s' if len(chosen) != 1 else ''} will be fetched at the next look."
    return redirect(request, "/feeds", text)


def delete_feed(
    feed_id: int, request: Request, context: SiteContext, session: AdminSession, form: CsrfForm
) -> Response:
    try:
        feed = _service(context).remove(str(feed_id))
    except PbxfwError as exc:
        return redirect(request, "/feeds", str(exc), "error")
    return redirect(request, "/feeds", f"Feed “{feed.name}” removed: its entries no longer block.")
