"""The server-rendered admin page: firewall, networks, apply, check, bans, IPS, services.

Every page is plain HTML from a Jinja2 template and works without
JavaScript; ``static/pbxfw.js`` only adds comfort (the mask list follows the
address family, switches save on change, the apply countdown). Forms post
back to the page that shows them and redirect after success
(post/redirect/get), with a one-time message in a signed cookie.

Every form post carries the session's CSRF token and is refused without it.
The routes are thin: read the form, call one use case, render or redirect.
Errors of the use cases come back keyed by field and are shown next to it.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Annotated, Any
from urllib.parse import quote

from fastapi import APIRouter, Depends, HTTPException, Request, status
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from fastapi.templating import Jinja2Templates
from starlette.datastructures import FormData

from pbxfw.domain.networks import Network, Verdict
from pbxfw.domain.services import Service
from pbxfw.domain.settings import IPS_PRESETS, Settings
from pbxfw.errors import PbxfwError, ValidationError
from pbxfw.usecases.config import NetworkChange
from pbxfw.usecases.ips_status import ips_status
from pbxfw.web.deps import (
    SESSION_COOKIE,
    AdminSession,
    Applier,
    ContextDep,
    OptionalSession,
    WebContext,
    client_address,
)
from pbxfw.web.security import SESSION, Session, csrf_matches

__all__ = ["error_page", "login_url", "router"]

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

PORT_KEYS = (
    "sip_port",
    "tls_port",
    "rtp_port_from",
    "rtp_port_to",
    "iax_port",
    "web_port",
    "web_https_port",
    "ssh_port",
    "ami_port",
    "ajam_port",
    "ajam_tls_port",
    "cti_ports",
)
PORT_LABELS = {
    "sip_port": "SIP (udp + tcp)",
    "tls_port": "SIP over TLS (tcp)",
    "rtp_port_from": "RTP from (udp)",
    "rtp_port_to": "RTP to (udp)",
    "iax_port": "IAX2 (udp)",
    "web_port": "Web, HTTP (tcp)",
    "web_https_port": "Web, HTTPS (tcp)",
    "ssh_port": "SSH (tcp)",
    "ami_port": "AMI (tcp)",
    "ajam_port": "AJAM / ARI, HTTP (tcp)",
    "ajam_tls_port": "AJAM / ARI, HTTPS (tcp)",
    "cti_ports": "CTI client (tcp)",
}
IPS_VALUE_KEYS = ("ips_maxretry", "ips_findtime", "ips_bantime", "ips_bantime_max")
IPS_OTHER_KEYS = ("ips_whitelist", "sip_rate_limit")
LOG_KEYS = ("log_asterisk_security", "log_asterisk_messages", "log_ssh", "log_web")
IPS_LABELS = {
    "ips_maxretry": "Failures before a ban",
    "ips_findtime": "Counted within",
    "ips_bantime": "Ban length",
    "ips_bantime_max": "Longest ban",
    "ips_whitelist": "Never ban these addresses (comma-separated addresses or CIDRs)",
    "sip_rate_limit": "SIP packets per second from one address (0: no limit)",
    "log_asterisk_security": "Asterisk security log",
    "log_asterisk_messages": "Asterisk messages log",
    "log_ssh": "SSH daemon log",
    "log_web": "Web server error log",
}
PRESET_TEXT = {
    "weak": "20 failures in 10 min → banned for 10 min",
    "normal": "10 failures in 1 h → banned for 1 day",
    "enhanced": "5 failures in 6 h → banned for 7 days",
    "paranoid": "3 failures in 24 h → banned for 30 days",
}
APPLY_WINDOWS = (30, 60, 120, 300)


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
    """Render ``template`` with what every page shows (user, CSRF token, message, pending apply)."""
    context = _context(request)
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
    page = {
        "request": request,
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
    return response


def _set_session(request: Request, response: Response, session: Session) -> None:
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


def _text(form: FormData, key: str) -> str:
    value = form.get(key)
    return value if isinstance(value, str) else ""


def _errors(
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


# -- log in / log out ---------------------------------------------------------------


def _safe_next(target: str) -> str:
    # Only a local path: never an absolute URL or //host (an open redirect).
    if target.startswith("/") and not target.startswith("//") and "\\" not in target:
        return target
    return "/firewall"


def login_page(request: Request, session: OptionalSession, next: str = "/firewall") -> Response:
    if session is not None and session.user:
        return RedirectResponse(_safe_next(next), status_code=status.HTTP_303_SEE_OTHER)
    session = session or Session.new()
    response = render(
        request, "login.html", {"next": _safe_next(next), "user": ""}, session=session
    )
    _set_session(request, response, session)
    return response


async def login(
    request: Request, context: ContextDep, session: OptionalSession, form: CsrfForm
) -> Response:
    user, password = _text(form, "username"), _text(form, "password")
    target = _safe_next(_text(form, "next"))
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
    _set_session(request, response, Session.new(user))
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
    if _text(form, "everywhere"):
        context.users.logout_everywhere(session.user)
        message = "You are logged out everywhere: every session and API token of yours has ended."
    response = redirect(request, "/login", message)
    response.delete_cookie(SESSION_COOKIE, path="/")
    return response


def home(session: AdminSession) -> Response:
    return RedirectResponse("/firewall", status_code=status.HTTP_303_SEE_OTHER)


# -- firewall: switches and the networks table -----------------------------------------


def _columns(services: tuple[Service, ...]) -> list[dict[str, str]]:
    return [
        {
            "key": s.key,
            "short": SHORT_LABELS.get(s.key, s.label),
            "label": s.label,
            "ports": s.ports_text(),
        }
        for s in services
    ]


def firewall_page(request: Request, context: ContextDep, session: AdminSession) -> Response:
    config = context.config.configuration()
    return render(
        request,
        "firewall.html",
        {
            "settings": config.settings,
            "networks": config.networks,
            "columns": _columns(config.services()),
        },
        session=session,
    )


def save_switches(
    request: Request, context: ContextDep, session: AdminSession, form: CsrfForm
) -> Response:
    changes = {key: form.get(key) == "on" for key in ("firewall_enabled", "ips_enabled")}
    settings = context.config.update_settings(changes)
    words = [
        "Firewall " + ("enabled" if settings.firewall_enabled else "disabled"),
        "intrusion prevention " + ("enabled" if settings.ips_enabled else "disabled"),
    ]
    return redirect(request, "/firewall", "; ".join(words) + ".")


def _whole_number(text: str, low: int, high: int, default: int) -> int:
    """``text`` as a number from ``low`` to ``high`` written in ASCII digits, else ``default``.

    Not ``str.isdigit`` alone: ``"²"`` is a digit to it and not to ``int``, and
    ``int`` refuses thousands of digits; both were a 500 for a form value.
    """
    digits = text.lstrip("0") or ("0" if text else "")
    if not (digits.isascii() and digits.isdigit()) or len(digits) > len(str(high)):
        return default
    value = int(digits)
    return value if low <= value <= high else default


# -- the network form ------------------------------------------------------------------


@dataclass(slots=True)
class NetworkForm:
    """What the network form shows: values as typed, and errors by input name."""

    name: str = ""
    address: str = ""
    prefix: int = 24
    description: str = ""
    services: dict[str, bool] = field(default_factory=dict)
    local: bool = False
    never_block: bool = False
    permanent: bool = False
    id: int | None = None
    errors: dict[str, str] = field(default_factory=dict)

    @property
    def ipv6(self) -> bool:
        return ":" in self.address

    @classmethod
    def of(cls, network: Network) -> NetworkForm:
        return cls(
            name=network.name,
            address=str(network.subnet.network_address),
            prefix=network.subnet.prefixlen,
            description=network.description,
            services={k: v is Verdict.ALLOW for k, v in network.services.items()},
            local=network.local,
            never_block=network.never_block,
            permanent=network.permanent,
            id=network.id,
        )

    @classmethod
    def posted(cls, form: FormData, keys: tuple[str, ...]) -> NetworkForm:
        prefix = _text(form, "prefix")
        return cls(
            name=_text(form, "name"),
            address=_text(form, "address").strip(),
            prefix=_whole_number(prefix, 0, 128, 24),
            description=_text(form, "description"),
            services={k: form.get(f"service_{k}") == "allow" for k in keys},
            local=form.get("local") == "on",
            never_block=form.get("never_block") == "on",
        )

    def subnet(self, form: FormData) -> str:
        """The CIDR the administrator meant: the address field may hold a whole CIDR."""
        if not self.address or "/" in self.address:
            return self.address
        prefix = _text(form, "prefix")
        return f"{self.address}/{prefix}" if prefix else self.address

    def change(self, form: FormData, *, with_subnet: bool = True) -> NetworkChange:
        return NetworkChange(
            name=self.name,
            subnet=self.subnet(form) if with_subnet else None,
            services={k: "allow" if v else "block" for k, v in self.services.items()},
            local=self.local,
            never_block=self.never_block,
            description=self.description,
        )


# Use-case field names → the form's input names.
_NETWORK_FIELDS = {
    "subnet": "address",
    "allow": "services",
    "block": "services",
    "services": "services",
}
_NETWORK_INPUTS = frozenset({"name", "address", "services", "description"})


def _network_form(
    request: Request,
    context: WebContext,
    session: Session,
    form: NetworkForm,
    *,
    status_code: int = status.HTTP_200_OK,
) -> HTMLResponse:
    config = context.config.configuration()
    return render(
        request,
        "network_form.html",
        {"form": form, "columns": _columns(config.services())},
        session=session,
        status_code=status_code,
    )


def new_network_page(request: Request, context: ContextDep, session: AdminSession) -> Response:
    # The toggles start as the Internet has them: what a new, unknown address gets today.
    internet = next((n for n in context.config.networks() if str(n.subnet) == "0.0.0.0/0"), None)
    services = {
        s.key: internet is not None and internet.verdict(s.key) is Verdict.ALLOW
        for s in context.config.services()
    }
    return _network_form(request, context, session, NetworkForm(services=services))


def create_network(
    request: Request, context: ContextDep, session: AdminSession, form: CsrfForm
) -> Response:
    keys = context.config.configuration().service_keys()
    posted = NetworkForm.posted(form, keys)
    try:
        network, notes = context.config.add_network(posted.change(form))
    except ValidationError as exc:
        posted.errors = _errors(exc, _NETWORK_FIELDS, _NETWORK_INPUTS)
        return _network_form(request, context, session, posted, status_code=422)
    message = " ".join([f"Network “{network.name}” ({network.subnet}) added.", *notes])
    return redirect(request, "/firewall", message)


def edit_network_page(
    network_id: int, request: Request, context: ContextDep, session: AdminSession
) -> Response:
    network = context.config.network(network_id)
    return _network_form(request, context, session, NetworkForm.of(network))


def update_network(
    network_id: int, request: Request, context: ContextDep, session: AdminSession, form: CsrfForm
) -> Response:
    current = context.config.network(network_id)
    posted = NetworkForm.posted(form, context.config.configuration().service_keys())
    posted.id, posted.permanent = current.id, current.permanent
    if current.permanent:
        # The subnet of a permanent network cannot change; its inputs are read-only.
        posted.address, posted.prefix = (
            str(current.subnet.network_address),
            current.subnet.prefixlen,
        )
    try:
        network, notes = context.config.update_network(
            network_id, posted.change(form, with_subnet=not current.permanent)
        )
    except ValidationError as exc:
        posted.errors = _errors(exc, _NETWORK_FIELDS, _NETWORK_INPUTS)
        return _network_form(request, context, session, posted, status_code=422)
    message = " ".join([f"Network “{network.name}” ({network.subnet}) saved.", *notes])
    return redirect(request, "/firewall", message)


def delete_network(
    network_id: int, request: Request, context: ContextDep, session: AdminSession, form: CsrfForm
) -> Response:
    try:
        network = context.config.remove_network(network_id)
    except PbxfwError as exc:
        return redirect(request, "/firewall", str(exc), "error")
    return redirect(request, "/firewall", f"Network “{network.name}” ({network.subnet}) deleted.")


# -- apply -------------------------------------------------------------------------


def apply_page(request: Request, context: ContextDep, session: AdminSession) -> Response:
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
    request: Request, context: ContextDep, session: AdminSession, form: CsrfForm
) -> Response:
    if context.applier is None:
        return redirect(request, "/apply", "Applying is not available on this server.", "error")
    seconds = None
    if form.get("confirm") == "on":
        text = _text(form, "confirm_seconds")
        # The same bounds as the API's ApplyRequest; anything else gets the default.
        seconds = _whole_number(text, 5, 3600, 60)
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
    context: ContextDep,
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
    request: Request, context: ContextDep, session: AdminSession, form: CsrfForm
) -> Response:
    return _pending_change_action(
        request, context, lambda a: a.confirm(), "Changes kept.", "Could not keep the change"
    )


def roll_back(
    request: Request, context: ContextDep, session: AdminSession, form: CsrfForm
) -> Response:
    return _pending_change_action(
        request,
        context,
        lambda a: a.rollback(),
        "Rolled back: the previous rules are in place again.",
        "Could not roll back",
    )


def apply_status(request: Request, context: ContextDep, session: OptionalSession) -> Response:
    """The pending change as JSON, for the countdown's polling (session, no redirect)."""
    if session is None or not session.user:
        return JSONResponse({"detail": "not logged in"}, status_code=status.HTTP_401_UNAUTHORIZED)
    pending = context.applier.pending() if context.applier is not None else None
    return JSONResponse(
        {"pending": pending, "now": context.clock()}, headers={"Cache-Control": "no-store"}
    )


# -- check an address ----------------------------------------------------------------


def check_page(
    request: Request,
    context: ContextDep,
    session: AdminSession,
    address: str = "",
    service: str = "sip",
) -> Response:
    services = context.config.services()
    decision = None
    errors: dict[str, str] = {}
    if address:
        try:
            active = [b.as_active() for b in context.bans.active()]
            decision = context.config.check(address, service, bans=active)
        except ValidationError as exc:
            errors = _errors(exc)
    return render(
        request,
        "check.html",
        {
            "address": address,
            "service": service,
            "services": services,
            "decision": decision,
            "errors": errors,
        },
        session=session,
        status_code=422 if errors else status.HTTP_200_OK,
    )


# -- banned addresses ----------------------------------------------------------------


def bans_page(request: Request, context: ContextDep, session: AdminSession) -> Response:
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


def add_ban(
    request: Request, context: ContextDep, session: AdminSession, form: CsrfForm
) -> Response:
    address, reason = _text(form, "address").strip(), _text(form, "reason").strip()
    try:
        ban = context.bans.add(address, reason=reason or "banned from the web page")
    except ValidationError as exc:
        return _bans_page(
            request, context, session, _errors(exc), {"address": address, "reason": reason}
        )
    return redirect(
        request,
        "/bans",
        f"{ban.address_text()} banned for {ban.remaining(context.clock()) // 60} min.",
    )


def unban(request: Request, context: ContextDep, session: AdminSession, form: CsrfForm) -> Response:
    address = _text(form, "address")
    try:
        context.bans.remove(address)
    except PbxfwError as exc:
        return redirect(request, "/bans", str(exc), "error")
    return redirect(request, "/bans", f"{address} unbanned.")


def never_block(
    request: Request, context: ContextDep, session: AdminSession, form: CsrfForm
) -> Response:
    """Lift the ban and add the address as a never-block network (or mark its network)."""
    subnet = _text(form, "subnet")
    try:
        network = context.config.trust(subnet).network
    except PbxfwError as exc:
        return redirect(request, "/bans", str(exc), "error")
    return redirect(
        request,
        "/bans",
        f"{subnet} is now never blocked (network “{network.name}”); its bans are lifted.",
    )


# -- intrusion prevention settings ---------------------------------------------------


def _duration_text(seconds: int) -> str:
    """``86400`` → ``1d``: the way the settings accept durations, the way people read them."""
    for unit, size in (("w", 604800), ("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size and seconds % size == 0:
            return f"{seconds // size}{unit}"
    return str(seconds)


def _current_preset(settings: Settings) -> str:
    for name, values in IPS_PRESETS.items():
        if all(getattr(settings, k) == v for k, v in values.items()):
            return name
    return "custom"


def _ips_page(
    request: Request,
    context: WebContext,
    session: Session,
    *,
    values: Mapping[str, str] | None = None,
    preset: str | None = None,
    enabled: bool | None = None,
    errors: Mapping[str, str] | None = None,
) -> HTMLResponse:
    settings = context.config.settings()
    keys = (*IPS_VALUE_KEYS, *IPS_OTHER_KEYS, *LOG_KEYS)
    shown = {k: settings.as_text(k) for k in keys}
    for key in ("ips_findtime", "ips_bantime", "ips_bantime_max"):
        shown[key] = _duration_text(getattr(settings, key))
    shown |= dict(values or {})
    ips = ips_status(context.store, context.clock)
    return render(
        request,
        "ips.html",
        {
            "values": shown,
            "labels": IPS_LABELS,
            "value_keys": IPS_VALUE_KEYS,
            "other_keys": IPS_OTHER_KEYS,
            "log_keys": LOG_KEYS,
            "presets": PRESET_TEXT,
            "preset": preset or _current_preset(settings),
            "enabled": settings.ips_enabled if enabled is None else enabled,
            "errors": errors or {},
            "counters": ips.jails,
            "sources": ips.sources,
            "failing": ips.failing,
            "web_log": str(context.web_log),
        },
        session=session,
        status_code=422 if errors else status.HTTP_200_OK,
    )


def ips_page(request: Request, context: ContextDep, session: AdminSession) -> Response:
    return _ips_page(request, context, session)


def save_ips(
    request: Request, context: ContextDep, session: AdminSession, form: CsrfForm
) -> Response:
    preset = _text(form, "ips_preset") or "custom"
    values = {k: _text(form, k) for k in (*IPS_VALUE_KEYS, *IPS_OTHER_KEYS, *LOG_KEYS)}
    changes: dict[str, Any] = {k: v for k, v in values.items() if k not in IPS_VALUE_KEYS}
    changes["ips_enabled"] = form.get("ips_enabled") == "on"
    if preset == "custom":
        changes.update({k: values[k] for k in IPS_VALUE_KEYS})
    else:
        # A preset sets maxretry, findtime and bantime; the longest ban stays as typed.
        changes["ips_preset"] = preset
        changes["ips_bantime_max"] = values["ips_bantime_max"]
    try:
        context.config.update_settings(changes)
    except ValidationError as exc:
        return _ips_page(
            request,
            context,
            session,
            values=values,
            preset=preset,
            enabled=changes["ips_enabled"],
            errors=_errors(exc),
        )
    return redirect(request, "/ips", "Intrusion prevention settings saved.")


# -- services ------------------------------------------------------------------------


def _services_page(
    request: Request,
    context: WebContext,
    session: Session,
    *,
    ports: Mapping[str, str] | None = None,
    custom: Mapping[str, str] | None = None,
    errors: Mapping[str, str] | None = None,
) -> HTMLResponse:
    settings = context.config.settings()
    return render(
        request,
        "services.html",
        {
            "services": context.config.services(),
            "ports": {k: settings.as_text(k) for k in PORT_KEYS} | dict(ports or {}),
            "port_labels": PORT_LABELS,
            "custom": dict(custom or {}),
            "errors": errors or {},
        },
        session=session,
        status_code=422 if errors else status.HTTP_200_OK,
    )


def services_page(request: Request, context: ContextDep, session: AdminSession) -> Response:
    return _services_page(request, context, session)


def save_ports(
    request: Request, context: ContextDep, session: AdminSession, form: CsrfForm
) -> Response:
    values = {k: _text(form, k).strip() for k in PORT_KEYS}
    try:
        context.config.update_settings(values)
    except ValidationError as exc:
        return _services_page(request, context, session, ports=values, errors=_errors(exc))
    return redirect(request, "/services", "Ports saved; the rules follow them.")


def add_custom_service(
    request: Request, context: ContextDep, session: AdminSession, form: CsrfForm
) -> Response:
    values = {k: _text(form, k).strip() for k in ("key", "label", "tcp", "udp")}
    try:
        service = context.config.add_service(
            values["key"], values["label"], values["tcp"], values["udp"]
        )
    except ValidationError as exc:
        errors = {f"custom_{k}": v for k, v in _errors(exc).items()}
        return _services_page(request, context, session, custom=values, errors=errors)
    return redirect(
        request,
        "/services",
        f"Service “{service.label}” added; every network blocks it until you allow it.",
    )


def remove_custom_service(
    key: str, request: Request, context: ContextDep, session: AdminSession, form: CsrfForm
) -> Response:
    try:
        context.config.remove_service(key)
    except PbxfwError as exc:
        return redirect(request, "/services", str(exc), "error")
    return redirect(request, "/services", f"Service {key} removed.")


# -- the router -------------------------------------------------------------------------


def router() -> APIRouter:
    """The page's routes (not in the OpenAPI document)."""
    r = APIRouter(include_in_schema=False, default_response_class=HTMLResponse)
    get, post = ["GET"], ["POST"]
    routes: list[tuple[str, Any, list[str]]] = [
        ("/", home, get),
        ("/login", login_page, get),
        ("/login", login, post),
        ("/logout", logout, post),
        ("/firewall", firewall_page, get),
        ("/firewall/switches", save_switches, post),
        ("/networks/new", new_network_page, get),
        ("/networks/new", create_network, post),
        ("/networks/{network_id}/edit", edit_network_page, get),
        ("/networks/{network_id}/edit", update_network, post),
        ("/networks/{network_id}/delete", delete_network, post),
        ("/apply", apply_page, get),
        ("/apply", apply_now, post),
        ("/apply/keep", keep_changes, post),
        ("/apply/rollback", roll_back, post),
        ("/apply/status", apply_status, get),
        ("/check", check_page, get),
        ("/bans", bans_page, get),
        ("/bans/add", add_ban, post),
        ("/bans/unban", unban, post),
        ("/bans/never-block", never_block, post),
        ("/ips", ips_page, get),
        ("/ips", save_ips, post),
        ("/services", services_page, get),
        ("/services/ports", save_ports, post),
        ("/services/custom", add_custom_service, post),
        ("/services/custom/{key}/delete", remove_custom_service, post),
    ]
    for path, endpoint, methods in routes:
        r.add_api_route(path, endpoint, methods=methods)
    return r


def login_url(path: str) -> str:
    """The login page, coming back to ``path`` afterwards."""
    return "/login?next=" + quote(path, safe="/")
