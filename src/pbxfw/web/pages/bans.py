"""The banned addresses page: ban, unban, never block."""

from __future__ import annotations

from fastapi import HTTPException, Request, status
from fastapi.responses import HTMLResponse, Response

from pbxfw.errors import NotFoundError, PbxfwError, ValidationError
from pbxfw.web.deps import (
    AdminSession,
    WebContext,
)
from pbxfw.web.pages.common import (
    CsrfForm,
    form_errors,
    form_text,
    redirect,
    render,
)
from pbxfw.web.pages.sites import SiteContext
from pbxfw.web.security import Session

# -- banned addresses ----------------------------------------------------------------


def bans_page(request: Request, context: SiteContext, session: AdminSession) -> Response:
    return _bans_page(request, context, session)


def _bans_page(
    request: Request,
    context: WebContext,
    session: Session,
    errors: dict[str, str] | None = None,
    values: dict[str, str] | None = None,
) -> HTMLResponse:
    return render(
        request,
        "bans.html",
        {"bans": context.bans.active(), "errors": errors or {}, "values": values or {}},
        session=session,
        status_code=422 if errors else status.HTTP_200_OK,
    )


def ban_details(
    request: Request, address: str, context: SiteContext, session: AdminSession
) -> Response:
    """``/bans/{address}``: why the address is banned (its bans, the rule, the lines)."""
    try:
        records = context.bans.show(address)
    except (NotFoundError, ValidationError) as exc:
        raise HTTPException(status.HTTP_404_NOT_FOUND, str(exc)) from None
    return render(
        request, "ban_details.html", {"address": address, "records": records}, session=session
    )


def add_ban(
    request: Request, context: SiteContext, session: AdminSession, form: CsrfForm
) -> Response:
    address, reason = form_text(form, "address").strip(), form_text(form, "reason").strip()
    try:
        ban = context.bans.add(address, reason=reason or "banned from the web page")
    except ValidationError as exc:
        return _bans_page(
            request, context, session, form_errors(exc), {"address": address, "reason": reason}
        )
    return redirect(
        request,
        "/bans",
        f"{ban.address_text()} banned for {ban.remaining(context.clock()) // 60} min.",
    )


def unban(
    request: Request, context: SiteContext, session: AdminSession, form: CsrfForm
) -> Response:
    address = form_text(form, "address")
    try:
        context.bans.remove(address)
    except PbxfwError as exc:
        return redirect(request, "/bans", str(exc), "error")
    return redirect(request, "/bans", f"{address} unbanned.")


def never_block(
    request: Request, context: SiteContext, session: AdminSession, form: CsrfForm
) -> Response:
    """Lift the ban and add the address as a never-block network (or mark its network)."""
    subnet = form_text(form, "subnet")
    try:
        network = context.config.trust(subnet).network
    except PbxfwError as exc:
        return redirect(request, "/bans", str(exc), "error")
    return redirect(
        request,
        "/bans",
        f"{subnet} is now never blocked (network “{network.name}”); its bans are lifted.",
    )
