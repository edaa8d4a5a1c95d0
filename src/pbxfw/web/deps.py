"""What routes depend on: the services, the current administrator, the applier.

Routes name their needs with the ``Annotated`` aliases below
(``ConfigDep``, ``CurrentAdmin``, …) and stay one call long. ``ConfigDep``
and ``ApplierDep`` are of the site the query names (``?site=NAME``, default
``default``; docs/fleet-sites.md): an unknown site answers 422 on ``site``. Everything
comes from the :class:`WebContext` that :func:`pbxfw.web.app.create_app`
builds and keeps in ``app.state``; nothing here is created at import.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, Protocol, runtime_checkable

from fastapi import Depends, HTTPException, Query, Request, status
from fastapi.security import OAuth2PasswordBearer
from starlette.concurrency import run_in_threadpool

from pbxfw.domain.history import Actor
from pbxfw.domain.sites import DEFAULT_SITE, SITE_NAME_MAX
from pbxfw.storage.repository import Store
from pbxfw.usecases.actor import use_actor
from pbxfw.usecases.bans import BanService
from pbxfw.usecases.config import ConfigService
from pbxfw.usecases.users import LoginThrottle, UserService
from pbxfw.web.security import (
    API_TOKEN,
    SESSION,
    Session,
    Signer,
    issued_at,
    record_login_failure,
)

__all__ = [
    "ADMIN_SCOPE_KEY",
    "AdminSession",
    "Applier",
    "ApplierDep",
    "BansDep",
    "BearerToken",
    "ConfigDep",
    "ContextDep",
    "CurrentAdmin",
    "LoginOutcome",
    "LoginRequired",
    "OptionalSession",
    "SiteApplier",
    "SiteQuery",
    "WebContext",
    "act_as",
    "bearer_admin",
    "client_address",
]

SESSION_COOKIE = "pbxfw_session"


class Applier(Protocol):
    """Compile the stored configuration and put it in the kernel, safely.

    The web layer only drives it; the dataplane implements it. Contract:

    - ``preview()``: the text to show before applying (diff or ruleset).
    - ``apply(confirm_seconds, admin_address)``: apply now. With
      ``confirm_seconds`` the previous ruleset comes back by itself unless
      ``confirm()`` is called within that time — also when this process or
      the administrator's browser is gone (a watchdog outside the request).
      ``admin_address`` is the client's address: raise
      :class:`pbxfw.errors.LockoutError` when the new rules would block it
      (the anti-lockout rule). Returns at least ``{"status": "applied"}`` or
      ``{"status": "pending", "deadline": EPOCH_SECONDS}``.
    - ``confirm()`` / ``rollback()``: keep / undo the pending change; return
      ``{"status": "confirmed"}`` / ``{"status": "rolled_back"}``.
    - ``pending()``: ``{"status": "pending", "deadline": EPOCH_SECONDS}`` while a
      change awaits confirmation, else None.

    Errors are pbxfw errors (KernelError, LockoutError, NotFoundError when
    nothing is pending); the web layer maps them to statuses and messages.
    """

    def preview(self) -> str: ...

    def apply(self, confirm_seconds: int | None, admin_address: str | None) -> dict[str, Any]: ...

    def confirm(self) -> dict[str, Any]: ...

    def rollback(self) -> dict[str, Any]: ...

    def pending(self) -> dict[str, Any] | None: ...


@runtime_checkable
class SiteApplier(Protocol):
    """An Applier that can apply another site's configuration (``?site=NAME``)."""

    def at_site(self, site: str) -> Applier: ...


@dataclass(frozen=True, slots=True)
class LoginOutcome:
    """The answer to one login attempt: ``ok``, or refused for ``retry_after`` seconds."""

    ok: bool
    retry_after: int = 0


@dataclass(slots=True)
class WebContext:
    """Everything the routes share for one application instance.

    ``clock`` and ``sleep`` are injectable for tests (the throttle's delays
    are awaited with ``sleep``); ``login_throttle`` False switches the login
    throttle off (benchmarks measure the guessing rate without it).
    """

    store: Store
    signer: Signer
    applier: Applier | None
    web_log: Path
    clock: Callable[[], float] = time.time
    token_ttl: int = 3600
    session_ttl: int = 8 * 3600
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep
    login_throttle: bool = True
    #: The applier of each site (None: ``applier`` applies the site ``default`` only).
    applier_for: Callable[[str], Applier | None] | None = None
    config: ConfigService = field(init=False)
    users: UserService = field(init=False)
    bans: BanService = field(init=False)
    throttle: LoginThrottle | None = field(init=False)
    #: Serialised answers by name, with the configuration revision they show.
    cache: dict[str, tuple[int, bytes]] = field(init=False, default_factory=dict)

    def __post_init__(self) -> None:
        self.config = ConfigService(self.store)
        self.users = UserService(self.store, clock=self.clock)
        self.bans = BanService(self.store, clock=self.clock)
        self.throttle = LoginThrottle(self.store, clock=self.clock) if self.login_throttle else None

    def config_for(self, site: str) -> ConfigService:
        """The ConfigService of ``site`` (``self.config`` for the server's own site,
        ``default`` unless ``pbxfw --site S serve``)."""
        return self.config if site == self.config.site else ConfigService(self.store, site=site)

    def cached(
        self, name: str, build: Callable[[], Any], config: ConfigService | None = None
    ) -> bytes:
        """``build()`` as JSON bytes, built again only when the configuration
        revision (of ``config``'s site, default ``self.config``'s) changed
        (listing 1,000 networks costs ~30 ms; this costs one small query)."""
        config = config or self.config
        key = name if config.site == DEFAULT_SITE else f"{name}@{config.site}"
        revision = config.revision()
        hit = self.cache.get(key)
        if hit is None or hit[0] != revision:
            body = json.dumps(build(), ensure_ascii=False, separators=(",", ":")).encode()
            # The revision is read again after building: a change during the
            # build must not be cached under the older revision.
            hit = (revision if config.revision() == revision else -1, body)
            self.cache[key] = hit
        return hit[1]

    def session_of(self, request: Request) -> Session | None:
        """The request's valid session cookie, or None.

        A logged-in session must also be unrevoked (logout) and issued after
        its user's cutoff (``pbxfw user logout``): one small query. An
        anonymous session (the login form's) needs none.
        """
        data = self.signer.unsign(SESSION, request.cookies.get(SESSION_COOKIE))
        session = Session.from_payload(data) if data else None
        if session is None:
            return None
        if session.user and not self.users.accepts(session.user, session.issued, session.sid):
            return None
        return session

    def token_claims(self, token: str | None) -> dict[str, Any] | None:
        """The payload of a valid bearer token: signed, unexpired, not revoked,
        issued after its user's cutoff, for a user who exists; else None."""
        data = self.signer.unsign(API_TOKEN, token)
        subject = data.get("sub") if data else None
        if data is None or not isinstance(subject, str) or not subject:
            return None
        jti = data.get("jti")
        if not self.users.accepts(subject, issued_at(data), jti if isinstance(jti, str) else None):
            return None
        return data

    def token_subject(self, token: str | None) -> str | None:
        """The user a bearer token was issued to, if it is valid (see ``token_claims``)."""
        data = self.token_claims(token)
        return str(data["sub"]) if data else None

    async def attempt_login(self, user: str, password: str, address: str) -> LoginOutcome:
        """Check a password through the login throttle (page and token route alike).

        Refused without checking the password while the address is locked;
        delayed while the account is under attack; a wrong password is
        written to the web jail's log. Database work and argon2 run in the
        thread pool, the delay on the event loop (a waiting guesser holds no
        thread).
        """
        throttle = self.throttle
        if throttle is not None:
            admission = await run_in_threadpool(throttle.begin, user, address)
            if admission.refused:
                return LoginOutcome(False, admission.retry_after)
            if admission.delay:
                await self.sleep(admission.delay)
        ok = bool(user) and await run_in_threadpool(self.users.verify, user, password)
        if ok:
            if throttle is not None:
                await run_in_threadpool(throttle.succeeded, user, address)
            return LoginOutcome(True)
        if throttle is not None:
            await run_in_threadpool(throttle.failed, user, address)
        await run_in_threadpool(record_login_failure, self.web_log, self.clock(), user, address)
        return LoginOutcome(False)


async def get_context(request: Request) -> WebContext:
    context: WebContext = request.app.state.pbxfw
    return context


# The dependencies are coroutines although they do no I/O: FastAPI runs a
# plain function in its thread pool, a hop that costs more than their work.
ContextDep = Annotated[WebContext, Depends(get_context)]


#: ``?site=NAME``: the site whose configuration a route reads or changes;
#: without it, the server's own site (``pbxfw --site S serve``; ``default``).
SiteQuery = Annotated[
    str | None,
    Query(
        min_length=1,
        max_length=SITE_NAME_MAX,
        description="The site whose configuration to use (`GET /api/v1/sites`); "
        "the server's own site when not given.",
    ),
]


async def get_config(context: ContextDep, site: SiteQuery = None) -> ConfigService:
    # A name no site can have is refused here (422 on `site`); a site that
    # does not exist by the use case's first unit of work (the same 422).
    return context.config_for(site or context.config.site)


async def get_bans(context: ContextDep) -> BanService:
    return context.bans


async def get_applier(context: ContextDep, site: SiteQuery = None) -> Applier:
    site = site or context.config.site
    if context.applier is None:
        raise HTTPException(
            status.HTTP_503_SERVICE_UNAVAILABLE,
            "applying is not available: this server was started without the dataplane",
        )
    if site == context.config.site:
        return context.applier
    context.config_for(site).store.check_site()  # 422 on `site` when there is none
    if context.applier_for is not None:
        # `pbxfw serve` applies its own site only, as the page does (docs/web.md, "Sites").
        applier = context.applier_for(site)
        if applier is None:
            raise HTTPException(
                status.HTTP_503_SERVICE_UNAVAILABLE,
                f"this server applies the site {context.config.site!r} only: apply {site!r} "
                f"on one of its PBXs (pbxfw apply --site {site})",
            )
        return applier
    if not isinstance(context.applier, SiteApplier):
        raise HTTPException(
            status.HTTP_503_SERVICE_UNAVAILABLE,
            f"applying the site {site!r} is not available on this server",
        )
    return context.applier.at_site(site)


ConfigDep = Annotated[ConfigService, Depends(get_config)]
BansDep = Annotated[BanService, Depends(get_bans)]
ApplierDep = Annotated[Applier, Depends(get_applier)]

# auto_error=False: the 401 below carries our own message; the scheme still
# documents the token URL in the OpenAPI document (the "Authorize" button).
_bearer = OAuth2PasswordBearer(tokenUrl="/api/v1/auth/token", auto_error=False)


#: The raw bearer token of the request (None without one); not checked.
BearerToken = Annotated[str | None, Depends(_bearer)]

#: Where the API gate leaves the administrator it found (one check per request).
ADMIN_SCOPE_KEY = "pbxfw.admin"


async def bearer_admin(context: ContextDep, request: Request, token: BearerToken) -> str:
    """The administrator named by a valid bearer token; 401 otherwise."""
    subject = request.scope.get(ADMIN_SCOPE_KEY) or context.token_subject(token)
    if not isinstance(subject, str):
        raise HTTPException(
            status.HTTP_401_UNAUTHORIZED,
            "not authenticated: send a valid bearer token (POST /api/v1/auth/token)",
            headers={"WWW-Authenticate": "Bearer"},
        )
    act_as(request, subject, "rest")
    return subject


CurrentAdmin = Annotated[str, Depends(bearer_admin)]


class LoginRequired(Exception):
    """Raised by page dependencies without a logged-in session (→ redirect to /login)."""


async def optional_session(context: ContextDep, request: Request) -> Session | None:
    return context.session_of(request)


async def admin_session(context: ContextDep, request: Request) -> Session:
    session = context.session_of(request)
    if session is None or not session.user:
        raise LoginRequired
    act_as(request, session.user, "web")
    return session


OptionalSession = Annotated[Session | None, Depends(optional_session)]
AdminSession = Annotated[Session, Depends(admin_session)]


def act_as(request: Request, admin: str, via: str) -> None:
    """Name the administrator acting in this request, for the history
    (usecases.actor): the dependencies that authenticate call it, in the
    request's task, so the route (and the thread a sync route runs in) sees it."""
    use_actor(Actor(admin, via, client_address(request) or "unknown"))


def client_address(request: Request) -> str | None:
    """The peer address of the connection (what the anti-lockout rule protects)."""
    return request.client.host if request.client else None
