"""The Notifications page (issue 19): the channels, their last delivery and error, add, test, remove.

The shape of the Countries page. Targets are shown masked
(domain.notifications.masked): a password or a webhook's token typed once
is never shown again.
"""

from __future__ import annotations

import asyncio
import re
import socket
from collections.abc import Mapping

from fastapi import Request, status
from fastapi.responses import HTMLResponse, Response

from pbxfw.domain.notifications import MASK, WEBHOOK_TEMPLATES, masked
from pbxfw.domain.notify_messages import stamp
from pbxfw.errors import PbxfwError, ValidationError
from pbxfw.usecases.notifications import NotifyService
from pbxfw.web.deps import AdminSession, ContextDep, WebContext
from pbxfw.web.pages.common import CsrfForm, form_errors, form_text, redirect, render
from pbxfw.web.security import Session

__all__ = ["add_channel", "delete_channel", "notifications_page", "test_channel"]


def _service(context: WebContext) -> NotifyService:
    return NotifyService(context.config.store, clock=context.clock)


def _page(
    request: Request,
    context: WebContext,
    session: Session,
    *,
    new: Mapping[str, str] | None = None,
    errors: Mapping[str, str] | None = None,
) -> HTMLResponse:
    rows = [
        {
            "name": v.channel.name,
            "template": v.channel.template,
            "url": masked(v.channel.url),
            "last_sent": stamp(v.last_sent_at) if v.last_sent_at else "never",
            "last_error": v.last_error,
            "dropped": sum(s.dropped for s in v.statuses),
        }
        for v in _service(context).listing()
    ]
    return render(
        request,
        "notifications.html",
        {
            "channels": rows,
            "templates": (*WEBHOOK_TEMPLATES, "email"),
            "new": dict(new or {}),
            "errors": errors or {},
        },
        session=session,
        status_code=422 if errors else status.HTTP_200_OK,
    )


def notifications_page(request: Request, context: ContextDep, session: AdminSession) -> Response:
    return _page(request, context, session)


def add_channel(
    request: Request, context: ContextDep, session: AdminSession, form: CsrfForm
) -> Response:
    values = {k: form_text(form, k).strip() for k in ("name", "url", "template")}
    # "": by the target (generic or email); "email" with a webhook's URL is
    # refused by the validator rather than stored as a generic webhook.
    template = values["template"] or None
    try:
        channel = _service(context).add(values["name"], values["url"], template)
    except ValidationError as exc:
        errors = {f"new_{k}": v for k, v in form_errors(exc).items()}
        return _page(request, context, session, new=_shown_back(values, errors), errors=errors)
    return redirect(request, "/notifications", f"Channel “{channel.name}” added.")


#: A target whose secrets ``masked`` finds: ``SCHEME://`` then the rest
#: (a scheme mistyped but followed by ``://`` still parses so).
_READABLE = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*://")


def _shown_back(values: dict[str, str], errors: dict[str, str]) -> dict[str, str]:
    """The refused form's values as the page shows them again: the target
    masked, so a password or token typed into it is not sent back in the
    page (the field then says to type it again; a target still holding
    ``****`` is refused by the validator)."""
    url = values["url"]
    if url and not _READABLE.match(url):
        # Without its scheme the masking cannot tell where a password sits
        # ("admin:secret@host", "smtp//admin:secret@host"): show nothing.
        retype = "Type the target again: the page does not show back one it cannot read."
        errors["new_url"] = f"{errors['new_url']} {retype}" if "new_url" in errors else retype
        return {**values, "url": ""}
    shown = masked(url) if url else ""
    if shown != url:
        retype = (
            f"Type the password or token again in place of {MASK}: the page does not show it back."
        )
        errors["new_url"] = f"{errors['new_url']} {retype}" if "new_url" in errors else retype
    return {**values, "url": shown}


async def test_channel(
    name: str, request: Request, context: ContextDep, session: AdminSession, form: CsrfForm
) -> Response:
    try:
        await asyncio.to_thread(_service(context).test, name, node=socket.gethostname())
    except PbxfwError as exc:
        return redirect(request, "/notifications", f"Test of “{name}” failed: {exc}", "error")
    return redirect(request, "/notifications", f"Test message sent to “{name}”.")


def delete_channel(
    name: str, request: Request, context: ContextDep, session: AdminSession, form: CsrfForm
) -> Response:
    try:
        channel = _service(context).remove(name)
    except PbxfwError as exc:
        return redirect(request, "/notifications", str(exc), "error")
    return redirect(request, "/notifications", f"Channel “{channel.name}” removed.")
