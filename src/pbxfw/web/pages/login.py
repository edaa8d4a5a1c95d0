"""Log in, log out, and the home page that leads to the firewall."""

from __future__ import annotations

from urllib.parse import quote

from fastapi import Request, status
from fastapi.responses import RedirectResponse, Response

from pbxfw.web.deps import (
    SESSION_COOKIE,
    AdminSession,
    ContextDep,
    OptionalSession,
    client_address,
)
from pbxfw.web.pages.common import (
    CsrfForm,
    form_text,
    redirect,
    render,
    set_session_cookie,
)
from pbxfw.web.security import Session

# -- log in / log out ---------------------------------------------------------------

#: Where a login leads without a ``next``, and ``/`` (issue 19: the dashboard).
FIRST_PAGE = "/dashboard"


def _safe_next(target: str) -> str:
    # Only a local path: never an absolute URL or //host (an open redirect).
    if target.startswith("/") and not target.startswith("//") and "\\" not in target:
        return target
    return FIRST_PAGE


def login_page(request: Request, session: OptionalSession, next: str = FIRST_PAGE) -> Response:
    if session is not None and session.user:
        return RedirectResponse(_safe_next(next), status_code=status.HTTP_303_SEE_OTHER)
    session = session or Session.new()
    response = render(
        request, "login.html", {"next": _safe_next(next), "user": ""}, session=session
    )
    set_session_cookie(request, response, session)
    return response


async def login(
    request: Request, context: ContextDep, session: OptionalSession, form: CsrfForm
) -> Response:
    user, password = form_text(form, "username"), form_text(form, "password")
    target = _safe_next(form_text(form, "next"))
    # The throttle, argon2 and the web jail's log: the same path as the token route.
    outcome = await context.attempt_login(user, password, client_address(request) or "")
    if not outcome.ok:
        if outcome.retry_after:
            error = (
                "Too many failed logins from your address. Try again in "
                f"{_wait_text(outcome.retry_after)}."
            )
            code = status.HTTP_429_TOO_MANY_REQUESTS
        else:
            error, code = "Wrong user name or password.", status.HTTP_401_UNAUTHORIZED
        page = render(
            request,
            "login.html",
            {"next": target, "user": user, "error": error},
            session=session,
            status_code=code,
        )
        if outcome.retry_after:
            page.headers["Retry-After"] = str(outcome.retry_after)
        return page
    # A new session id and CSRF token at login (no session fixation).
    response = redirect(request, target)
    set_session_cookie(request, response, Session.new(user))
    return response


def _wait_text(seconds: int) -> str:
    if seconds < 120:
        return f"{seconds} second{'s' if seconds != 1 else ''}"
    return f"{(seconds + 59) // 60} minutes"


def logout(
    request: Request, context: ContextDep, session: AdminSession, form: CsrfForm
) -> Response:
    """End this session (stored in the database: it stays ended after a restart);
    with ``everywhere`` set, every session and API token of this user."""
    context.users.revoke(session.sid, session.expires)
    message = "You are logged out."
    if form_text(form, "everywhere"):
        context.users.logout_everywhere(session.user)
        message = "You are logged out everywhere: every session and API token of yours has ended."
    response = redirect(request, "/login", message)
    response.delete_cookie(SESSION_COOKIE, path="/")
    return response


def home(session: AdminSession) -> Response:
    return RedirectResponse(FIRST_PAGE, status_code=status.HTTP_303_SEE_OTHER)


def login_url(path: str) -> str:
    """The login page, coming back to ``path`` afterwards."""
    return "/login?next=" + quote(path, safe="/")
