"""``POST /api/v1/auth/token`` (OAuth2 password flow → a signed bearer token)
and ``POST /api/v1/auth/logout`` (end that token, or every session of its user)."""

from __future__ import annotations

import secrets
from typing import Annotated

from fastapi import APIRouter, Body, Depends, HTTPException, Request, Response, status
from fastapi.security import OAuth2PasswordRequestForm
from pydantic import BaseModel, ConfigDict

from pbxfw.web.deps import BearerToken, ContextDep, CurrentAdmin, client_address
from pbxfw.web.schemas import Token
from pbxfw.web.security import API_TOKEN

__all__ = ["LogoutRequest", "issue_token", "logout", "router"]


async def issue_token(
    context: ContextDep,
    request: Request,
    form: Annotated[OAuth2PasswordRequestForm, Depends()],
) -> Token:
    """Exchange a user name and password for a bearer token with an expiry.

    A wrong name or password answers 401 and is written to the web log that
    the ``web`` jail reads, so guessing passwords through the API gets the
    guesser banned just as through the page. After 5 failures in a minute
    from one address, that address is refused (429 with ``Retry-After``) for
    a growing time; an account under attack answers more slowly, from every
    address (docs/security.md).
    """
    outcome = await context.attempt_login(
        form.username, form.password, client_address(request) or ""
    )
    if outcome.retry_after:
        raise HTTPException(
            status.HTTP_429_TOO_MANY_REQUESTS,
            f"too many failed logins from this address: try again in {outcome.retry_after} s",
            headers={"Retry-After": str(outcome.retry_after)},
        )
    if not outcome.ok:
        raise HTTPException(
            status.HTTP_401_UNAUTHORIZED,
            "wrong user name or password",
            headers={"WWW-Authenticate": "Bearer"},
        )
    # jti: the token's own id, so that logging out can revoke this token alone.
    payload = {"sub": form.username, "jti": secrets.token_urlsafe(16)}
    token = context.signer.sign(API_TOKEN, payload, context.token_ttl)
    return Token(access_token=token, expires_in=context.token_ttl)


class LogoutRequest(BaseModel):
    """``everywhere``: also end every other session and token of this user."""

    model_config = ConfigDict(extra="forbid", strict=True)

    everywhere: bool = False


def logout(
    context: ContextDep,
    admin: CurrentAdmin,
    token: BearerToken,
    body: Annotated[LogoutRequest | None, Body()] = None,
) -> Response:
    """End the bearer token of this request (204); with ``{"everywhere": true}``
    every session cookie and token of its user issued until now, as
    ``pbxfw user logout NAME`` does."""
    claims = context.token_claims(token)
    if claims is not None and isinstance(claims.get("jti"), str):
        context.users.revoke(claims["jti"], float(claims["exp"]))
    if body is not None and body.everywhere:
        context.users.logout_everywhere(admin)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


def router() -> APIRouter:
    r = APIRouter(tags=["auth"])
    r.add_api_route(
        "/auth/token",
        issue_token,
        methods=["POST"],
        response_model=Token,
        responses={
            401: {"description": "wrong user name or password"},
            429: {"description": "too many failed logins from this address (see Retry-After)"},
        },
    )
    r.add_api_route(
        "/auth/logout",
        logout,
        methods=["POST"],
        status_code=status.HTTP_204_NO_CONTENT,
        response_class=Response,
        responses={401: {"description": "no valid bearer token"}},
    )
    return r
