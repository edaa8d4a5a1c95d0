"""What every page shares: rendering, the one-time message (flash), the session
cookie, CSRF-checked forms, form parsing and the services' short labels.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated, Any

from fastapi import Depends, HTTPException, Request, status
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.templating import Jinja2Templates
from starlette.datastructures import FormData

from pbxfw.domain.services import Service
from pbxfw.errors import PbxfwError, ValidationError
from pbxfw.web.deps import (
    SESSION_COOKIE,
    OptionalSession,
    WebContext,
)
from pbxfw.web.pages.sites import SITE_COOKIE, chosen_site, home_site, site_context
from pbxfw.web.security import SESSION, Session, csrf_matches

FLASH_COOKIE = "pbxfw_flash"
_FLASH = "flash"


#: Short column titles for the built-in services (the full label is the title).
SHORT_LABELS = {
    "sip": "SIP",
    "iax": "IAX2",
    "web": "Web",
    "ssh": "SSH",
    "ami": "AMI",
    "ajam": "AJAM",
    "icmp": "ICMP",
    "cti": "CTI",
}


# -- rendering -------------------------------------------------------------------


def _templates(request: Request) -> Jinja2Templates:
    templates: Jinja2Templates = request.app.state.templates
    return templates


def _context(request: Request) -> WebContext:
    context: WebContext = request.app.state.pbxfw
    return context


def render(
    request: Request,
    template: str,
    values: Mapping[str, Any] | None = None,
    *,
    session: Session | None = None,
    status_code: int = status.HTTP_200_OK,
) -> HTMLResponse:
    """Render ``template`` with what every page shows (user, CSRF token, message,
    pending apply, the site and the site selector)."""
    context = site_context(request)
    flash = context.signer.unsign(_FLASH, request.cookies.get(FLASH_COOKIE))
    pending = None
    unapplied = False
    if session is not None and session.user:
        unapplied = context.config.unapplied()
    if session is not None and session.user and context.applier is not None:
        try:
            pending = context.applier.pending()
        except PbxfwError:  # the banner is a courtesy; the Apply page shows the error
            pending = None
    site, sites = chosen_site(request)
    page = {
        "request": request,
        "site": site,
        # The selector and the forms' hidden site field exist only with two sites or more.
        "sites": sites if len(sites) > 1 else [],
        "session": session,
        "csrf": session.csrf if session else "",
        "flash": flash,
        "pending": pending,
        "unapplied": unapplied,
        "now": context.clock(),
        "nav": request.url.path,
        **(values or {}),
    }
    response = _templates(request).TemplateResponse(
        request, template, page, status_code=status_code
    )
    if flash is not None:
        response.delete_cookie(FLASH_COOKIE, path="/")
    response.headers["Cache-Control"] = "no-store"
    keep_site(request, response)
    return response


def error_page(request: Request, status_code: int, message: str) -> HTMLResponse:
    """An error as a page (the API answers JSON instead)."""
    session = _context(request).session_of(request)
    return render(
        request,
        "error.html",
        {"status_code": status_code, "message": message},
        session=session,
        status_code=status_code,
    )


def redirect(
    request: Request, url: str, message: str | None = None, kind: str = "ok"
) -> RedirectResponse:
    """303 to ``url``, with a one-time message shown by the next page."""
    response = RedirectResponse(url, status_code=status.HTTP_303_SEE_OTHER)
    if message:
        token = _context(request).signer.sign(_FLASH, {"text": message, "kind": kind}, 120)
        response.set_cookie(
            FLASH_COOKIE,
            token,
            max_age=120,
            httponly=True,
            samesite="strict",
            path="/",
            secure=request.url.scheme == "https",
        )
    keep_site(request, response)
    return response


def keep_site(request: Request, response: Response) -> None:
    """Remember in the browser the site this request worked on (pages/sites.py)."""
    site: str | None = getattr(request.state, "pbxfw_site", None)
    kept = request.cookies.get(SITE_COOKIE)
    if site is None or site == kept or (kept is None and site == home_site(_context(request))):
        return  # a route of no site (login), or nothing new to keep
    response.set_cookie(
        SITE_COOKIE,
        site,
        max_age=365 * 86400,
        httponly=True,
        samesite="strict",
        secure=request.url.scheme == "https",
        path="/",
    )


def set_session_cookie(request: Request, response: Response, session: Session) -> None:
    context = _context(request)
    token = context.signer.sign(SESSION, session.payload(), context.session_ttl)
    response.set_cookie(
        SESSION_COOKIE,
        token,
        max_age=context.session_ttl,
        httponly=True,
        samesite="strict",
        secure=request.url.scheme == "https",
        path="/",
    )


def form_text(form: FormData, key: str) -> str:
    value = form.get(key)
    return value if isinstance(value, str) else ""


def form_errors(
    exc: ValidationError,
    fields: Mapping[str, str] | None = None,
    shown: frozenset[str] | None = None,
) -> dict[str, str]:
    """Field errors keyed by the form's input names.

    ``fields`` renames use-case fields to inputs (``subnet`` → ``address``);
    ``services.sip`` goes to ``services``. With ``shown``, an error for any
    other field is kept under ``form`` rather than lost.
    """
    fields = fields or {}
    result: dict[str, str] = {}
    for error in exc.errors:
        name = fields.get(error.field, error.field)
        if "." in name and name.split(".", 1)[0] in fields.values():
            name = name.split(".", 1)[0]
        if shown is not None and name not in shown:
            name = "form"
        result[name] = f"{result[name]} {error.message}" if name in result else error.message
    return result


async def csrf_form(request: Request, session: OptionalSession) -> FormData:
    """The posted form, once its CSRF token has been checked against the session."""
    form = await request.form()
    if not csrf_matches(session, form.get("csrf_token")):
        raise HTTPException(
            status.HTTP_403_FORBIDDEN,
            "This form has expired or did not come from this page. Go back, reload and try again.",
        )
    return form


CsrfForm = Annotated[FormData, Depends(csrf_form)]


def table_columns(services: tuple[Service, ...]) -> list[dict[str, str]]:
    return [
        {
            "key": s.key,
            "short": SHORT_LABELS.get(s.key, s.label),
            "label": s.label,
            "ports": s.ports_text(),
        }
        for s in services
    ]


def whole_number(text: str, low: int, high: int, default: int) -> int:
    """``text`` as a number from ``low`` to ``high`` written in ASCII digits, else ``default``.

    Not ``str.isdigit`` alone: ``"²"`` is a digit to it and not to ``int``, and
    ``int`` refuses thousands of digits; both were a 500 for a form value.
    """
    digits = text.lstrip("0") or ("0" if text else "")
    if not (digits.isascii() and digits.isdigit()) or len(digits) > len(str(high)):
        return default
    value = int(digits)
    return value if low <= value <= high else default
