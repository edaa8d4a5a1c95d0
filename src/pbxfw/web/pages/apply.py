"""The apply page: preview, apply with a confirmation window, keep or roll back."""

from __future__ import annotations

from collections.abc import Callable

from fastapi import Request, status
from fastapi.responses import JSONResponse, Response

from pbxfw.errors import PbxfwError
from pbxfw.web.deps import (
    AdminSession,
    Applier,
    OptionalSession,
    WebContext,
    client_address,
)
from pbxfw.web.pages.common import (
    CsrfForm,
    form_text,
    redirect,
    render,
    whole_number,
)
from pbxfw.web.pages.sites import SiteContext
from pbxfw.web.security import Session

APPLY_WINDOWS = (30, 60, 120, 300)


# -- apply -------------------------------------------------------------------------


def apply_page(request: Request, context: SiteContext, session: AdminSession) -> Response:
    return _apply_page(request, context, session)


def _apply_page(
    request: Request, context: WebContext, session: Session, error: str = ""
) -> Response:
    preview = ""
    problem = error
    if context.applier is not None:
        try:
            preview = context.applier.preview()
        except PbxfwError as exc:
            problem = problem or str(exc)
    return render(
        request,
        "apply.html",
        {
            "available": context.applier is not None,
            "preview": preview,
            "error": problem,
            "windows": APPLY_WINDOWS,
            "client": client_address(request) or "",
        },
        session=session,
        status_code=status.HTTP_409_CONFLICT if error else status.HTTP_200_OK,
    )


def apply_now(
    request: Request, context: SiteContext, session: AdminSession, form: CsrfForm
) -> Response:
    if context.applier is None:
        return redirect(request, "/apply", "Applying is not available on this server.", "error")
    seconds = None
    if form.get("confirm") == "on":
        text = form_text(form, "confirm_seconds")
        # The same bounds as the API's ApplyRequest; anything else gets the default.
        seconds = whole_number(text, 5, 3600, 60)
    try:
        result = context.applier.apply(seconds, client_address(request))
    except PbxfwError as exc:
        return _apply_page(request, context, session, error=f"Not applied: {exc}")
    if result.get("status") == "pending":
        return redirect(
            request, "/apply", "Applied. Check that everything works, then keep the change."
        )
    return redirect(request, "/apply", "Applied.")


def _pending_change_action(
    request: Request,
    context: SiteContext,
    action: Callable[[Applier], object],
    done: str,
    failed: str,
) -> Response:
    """Keep or roll back the pending change."""
    if context.applier is None:
        return redirect(request, "/apply", "Applying is not available on this server.", "error")
    try:
        action(context.applier)
    except PbxfwError as exc:
        return redirect(request, "/apply", f"{failed}: {exc}", "error")
    return redirect(request, "/apply", done)


def keep_changes(
    request: Request, context: SiteContext, session: AdminSession, form: CsrfForm
) -> Response:
    return _pending_change_action(
        request, context, lambda a: a.confirm(), "Changes kept.", "Could not keep the change"
    )


def roll_back(
    request: Request, context: SiteContext, session: AdminSession, form: CsrfForm
) -> Response:
    return _pending_change_action(
        request,
        context,
        lambda a: a.rollback(),
        "Rolled back: the previous rules are in place again.",
        "Could not roll back",
    )


def apply_status(request: Request, context: SiteContext, session: OptionalSession) -> Response:
    """The pending change as JSON, for the countdown's polling (session, no redirect)."""
    if session is None or not session.user:
        return JSONResponse({"detail": "not logged in"}, status_code=status.HTTP_401_UNAUTHORIZED)
    pending = context.applier.pending() if context.applier is not None else None
    return JSONResponse(
        {"pending": pending, "now": context.clock()}, headers={"Cache-Control": "no-store"}
    )
