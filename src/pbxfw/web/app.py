"""The web application: the REST API under ``/api/v1`` and the admin page.

:func:`create_app` builds a new, independent application around a Store;
nothing is created at import. :func:`serve` runs one with uvicorn, bound to
127.0.0.1 unless told otherwise (put a TLS reverse proxy in front to reach it
from elsewhere, see docs/web.md).

Errors are translated here, once, from pbxfw's exception tree::

    ValidationError → 422  {"detail": [{"loc": [where, field], "msg", "type"}]}
    ConflictError   → 409  (same body: the field is named)
    NotFoundError   → 404, PermanentError → 409, LockoutError → 409,
    StorageError    → 503, KernelError → 502   {"detail": "message"}

On the page, the same errors render an error page (forms show theirs next to
the field themselves).
"""

from __future__ import annotations

import asyncio
import gc
import logging
import secrets
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request, status
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from pbxfw.errors import (
    ConflictError,
    KernelError,
    LockoutError,
    NotFoundError,
    PbxfwError,
    PermanentError,
    StorageError,
    ValidationError,
)
from pbxfw.storage.repository import Store
from pbxfw.web import pages
from pbxfw.web.api import PREFIX, api_router
from pbxfw.web.deps import ADMIN_SCOPE_KEY, Applier, LoginRequired, WebContext
from pbxfw.web.metrics import install_metrics
from pbxfw.web.security import Signer

__all__ = ["DEFAULT_WEB_LOG", "create_app", "serve"]

log = logging.getLogger(__name__)

HERE = Path(__file__).parent
#: Where failed logins are written for the ``web`` jail (relative to the working directory).
DEFAULT_WEB_LOG = Path("var/pbxfw-web.log")

#: API paths that need no token: the token route and the OpenAPI document.
_PUBLIC_API = frozenset(
    {
        f"{PREFIX}/auth/token",
        f"{PREFIX}/openapi.json",
        f"{PREFIX}/docs",
        f"{PREFIX}/docs/oauth2-redirect",
    }
)

_STATUS: dict[type[PbxfwError], int] = {
    ConflictError: status.HTTP_409_CONFLICT,
    ValidationError: status.HTTP_422_UNPROCESSABLE_CONTENT,
    NotFoundError: status.HTTP_404_NOT_FOUND,
    PermanentError: status.HTTP_409_CONFLICT,
    LockoutError: status.HTTP_409_CONFLICT,
    StorageError: status.HTTP_503_SERVICE_UNAVAILABLE,
    KernelError: status.HTTP_502_BAD_GATEWAY,
}


def status_of(exc: PbxfwError) -> int:
    """The HTTP status of a pbxfw error (the most specific class wins)."""
    for cls in type(exc).__mro__:
        if cls in _STATUS:
            return _STATUS[cls]
    return status.HTTP_400_BAD_REQUEST


def _is_api(request: Request) -> bool:
    return request.url.path.startswith(PREFIX + "/") or request.url.path == PREFIX


def _error_body(request: Request, exc: PbxfwError) -> dict[str, Any]:
    if isinstance(exc, ValidationError):
        # The same shape as FastAPI's own 422, so clients parse one format.
        where = {"GET": "query", "DELETE": "path"}.get(request.method, "body")
        return {
            "detail": [
                {
                    "loc": [where, *error.field.split(".")],
                    "msg": error.message,
                    "type": "conflict" if isinstance(exc, ConflictError) else "value_error",
                }
                for error in exc.errors
            ]
        }
    return {"detail": str(exc)}


class _ApiGate:
    """Answer 401 for ``/api/v1/...`` without a valid bearer token, before anything else.

    The route dependency checks the token too (and names the admin); this
    gate exists so that the 401 comes first even for a body that would not
    parse, and for paths that do not exist: an anonymous caller learns
    nothing about the API beyond its published document.
    """

    def __init__(self, app: ASGIApp, context: WebContext) -> None:
        self.app = app
        self.context = context

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = scope.get("path", "")
        if scope["type"] == "http" and path.startswith(PREFIX + "/") and path not in _PUBLIC_API:
            token = None
            for name, value in scope.get("headers", ()):
                if name == b"authorization":
                    scheme, _, token = value.decode("latin-1").partition(" ")
                    if scheme.lower() != "bearer":
                        token = None
            try:
                # Revocations and cutoffs are in the database: it may be away.
                subject = self.context.token_subject(token)
            except StorageError as exc:
                log.warning("%s: cannot check the bearer token: %s", path, exc)
                response = JSONResponse(
                    {"detail": str(exc)}, status_code=status.HTTP_503_SERVICE_UNAVAILABLE
                )
                await response(scope, receive, send)
                return
            if subject is None:
                response = JSONResponse(
                    {
                        "detail": "not authenticated: send a valid bearer token (POST /api/v1/auth/token)"
                    },
                    status_code=status.HTTP_401_UNAUTHORIZED,
                    headers={"WWW-Authenticate": "Bearer"},
                )
                await response(scope, receive, send)
                return
            # The route's own check (bearer_admin) takes it from here: one
            # database look-up per request, not two.
            scope[ADMIN_SCOPE_KEY] = subject
        await self.app(scope, receive, send)


# The page needs nothing from elsewhere: everything from 'self', no inline
# script, no framing. The API docs page (Swagger UI) loads its files from a
# CDN, so it is exempt; it only ever shows the public OpenAPI document.
_CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "frame-ancestors 'none'; form-action 'self'; base-uri 'none'"
)


class _SecurityHeaders:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        docs = scope.get("path", "").startswith(f"{PREFIX}/docs")

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers: list[tuple[bytes, bytes]] = list(message.get("headers", []))
                headers += [
                    (b"x-content-type-options", b"nosniff"),
                    (b"referrer-policy", b"same-origin"),
                    (b"x-frame-options", b"DENY"),
                ]
                if not docs:
                    headers.append((b"content-security-policy", _CSP.encode()))
                message["headers"] = headers
            await send(message)

        await self.app(scope, receive, send_with_headers)


def _when(epoch: float | None) -> str:
    if not epoch:
        return "–"
    try:
        return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%d %H:%M UTC")
    except (OverflowError, ValueError, OSError):  # a time no calendar shows
        return f"{epoch:.0f} (epoch seconds)"


def _duration(seconds: float | int | None) -> str:
    """``90061`` → ``1 d 1 h``: two units at most, for tables."""
    if seconds is None:
        return "–"
    left = int(seconds)
    parts: list[str] = []
    for unit, size in (("d", 86400), ("h", 3600), ("min", 60), ("s", 1)):
        if left >= size or (unit == "s" and not parts):
            parts.append(f"{left // size} {unit}")
            left %= size
        if len(parts) == 2:
            break
    return " ".join(parts)


def _templates() -> Jinja2Templates:
    templates = Jinja2Templates(directory=str(HERE / "templates"))
    templates.env.autoescape = True
    templates.env.filters["when"] = _when
    templates.env.filters["duration"] = _duration
    templates.env.trim_blocks = True
    templates.env.lstrip_blocks = True
    return templates


def create_app(
    store: Store,
    *,
    applier: Applier | None = None,
    secret_key: bytes | str | None = None,
    web_log: Path = DEFAULT_WEB_LOG,
    clock: Callable[[], float] = time.time,
    token_ttl: int = 3600,
    session_ttl: int = 8 * 3600,
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    login_throttle: bool = True,
    applier_for: Callable[[str], Applier | None] | None = None,
    metrics_token: str | None = None,
) -> FastAPI:
    """A new application around ``store``.

    ``applier`` puts the configuration into the kernel (None: the Apply page
    and routes say the dataplane is not available); ``applier_for(site)``, when
    given, is the applier of each site the page works on (docs/web.md, "Sites"). ``secret_key`` signs
    tokens and session cookies; without one a random key is made, so every
    token and session ends with the process. ``web_log`` receives one line
    per failed login for the ``web`` jail. ``clock`` and ``sleep`` (how the
    login throttle waits) are injectable for tests. ``login_throttle=False``
    switches the login throttle off — only for measuring it
    (bench/bench_login.py); ``pbxfw serve`` always has it on.
    ``metrics_token`` opens ``GET /metrics`` to its bearer (web.metrics).
    """
    if secret_key is None:
        key = secrets.token_bytes(32)
    elif isinstance(secret_key, str):
        key = secret_key.encode()
    else:
        key = secret_key
    context = WebContext(
        store=store,
        signer=Signer(key, clock),
        applier=applier,
        web_log=Path(web_log),
        clock=clock,
        token_ttl=token_ttl,
        session_ttl=session_ttl,
        sleep=sleep,
        login_throttle=login_throttle,
        applier_for=applier_for,
    )
    app = FastAPI(
        title="pbxfw",
        summary="Firewall and intrusion prevention for Asterisk PBXs",
        version="1",
        openapi_url=f"{PREFIX}/openapi.json",
        docs_url=f"{PREFIX}/docs",
        redoc_url=None,
    )
    app.state.pbxfw = context
    app.state.templates = _templates()
    app.include_router(api_router())
    app.include_router(pages.router())
    install_metrics(app, store, clock, metrics_token)
    app.mount("/static", StaticFiles(directory=HERE / "static"), name="static")
    _install_error_handlers(app)
    app.add_middleware(_ApiGate, context=context)
    app.add_middleware(_SecurityHeaders)
    return app


def _install_error_handlers(app: FastAPI) -> None:
    async def pbxfw_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, PbxfwError)
        code = status_of(exc)
        if code >= 500:
            log.warning("%s %s: %s", request.method, request.url.path, exc)
        if _is_api(request):
            return JSONResponse(_error_body(request, exc), status_code=code)
        return pages.error_page(request, code, str(exc))

    async def login_required(request: Request, exc: Exception) -> Response:
        target = request.url.path if request.method == "GET" else "/firewall"
        return RedirectResponse(pages.login_url(target), status_code=status.HTTP_303_SEE_OTHER)

    async def http_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, StarletteHTTPException)
        if _is_api(request) or request.url.path.startswith("/static/"):
            return JSONResponse(
                {"detail": exc.detail}, status_code=exc.status_code, headers=exc.headers
            )
        return pages.error_page(request, exc.status_code, str(exc.detail))

    async def invalid_request(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, RequestValidationError)
        if _is_api(request):
            from fastapi.encoders import jsonable_encoder

            return JSONResponse(
                {"detail": jsonable_encoder(exc.errors())},
                status_code=status.HTTP_422_UNPROCESSABLE_CONTENT,
            )
        return pages.error_page(request, status.HTTP_404_NOT_FOUND, "There is no such page.")

    handlers: list[tuple[type[Exception], Callable[[Request, Exception], Awaitable[Response]]]] = [
        (PbxfwError, pbxfw_error),
        (LoginRequired, login_required),
        (StarletteHTTPException, http_error),
        (RequestValidationError, invalid_request),
    ]
    for exc_class, handler in handlers:
        app.add_exception_handler(exc_class, handler)


def serve(
    store: Store,
    host: str = "127.0.0.1",
    port: int = 8080,
    *,
    applier: Applier | None = None,
    secret_key: bytes | str | None = None,
    web_log: Path = DEFAULT_WEB_LOG,
    ssl_certfile: str | None = None,
    ssl_keyfile: str | None = None,
    forwarded_allow_ips: str | None = None,
    applier_for: Callable[[str], Applier | None] | None = None,
    metrics_token: str | None = None,
    **uvicorn_options: Any,
) -> None:
    """Run the page and the API with uvicorn until interrupted.

    Binds 127.0.0.1 by default. ``ssl_certfile``/``ssl_keyfile`` serve HTTPS
    directly; behind a reverse proxy, pass its address in
    ``forwarded_allow_ips`` so the client's address (the anti-lockout rule,
    the ``web`` jail) and the https scheme (Secure cookies) are the real ones.
    """
    import uvicorn

    app = create_app(
        store,
        applier=applier,
        secret_key=secret_key,
        web_log=web_log,
        applier_for=applier_for,
        metrics_token=metrics_token,
    )
    # Everything made so far (modules, the app, its routes and templates)
    # lives as long as the server: out of the collector's sight, a full
    # collection during a request walks only what requests made (the p99
    # of `GET /api/v1/networks` grew with every page and module added).
    gc.collect()
    gc.freeze()
    uvicorn.run(
        app,
        host=host,
        port=port,
        ssl_certfile=ssl_certfile,
        ssl_keyfile=ssl_keyfile,
        proxy_headers=forwarded_allow_ips is not None,
        forwarded_allow_ips=forwarded_allow_ips,
        **uvicorn_options,
    )
