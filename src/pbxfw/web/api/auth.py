"""``POST /api/v1/auth/token``: the OAuth2 password flow → a signed bearer token."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException, Request, status
from fastapi.security import OAuth2PasswordRequestForm

from pbxfw.web.deps import ContextDep, client_address
from pbxfw.web.schemas import Token
from pbxfw.web.security import API_TOKEN, record_login_failure

__all__ = ["issue_token", "router"]


def issue_token(
    context: ContextDep,
    request: Request,
    form: Annotated[OAuth2PasswordRequestForm, Depends()],
) -> Token:
    """Exchange a user name and password for a bearer token with an expiry.

    A wrong name or password answers 401 and is written to the web log that
    the ``web`` jail reads, so guessing passwords through the API gets the
    guesser banned just as through the page.
    """
    if not context.users.verify(form.username, form.password):
        address = client_address(request) or ""
        record_login_failure(context.web_log, context.clock(), form.username, address)
        raise HTTPException(
            status.HTTP_401_UNAUTHORIZED,
            "wrong user name or password",
            headers={"WWW-Authenticate": "Bearer"},
        )
    token = context.signer.sign(API_TOKEN, {"sub": form.username}, context.token_ttl)
    return Token(access_token=token, expires_in=context.token_ttl)


def router() -> APIRouter:
    r = APIRouter(tags=["auth"])
    r.add_api_route(
        "/auth/token",
        issue_token,
        methods=["POST"],
        response_model=Token,
        responses={401: {"description": "wrong user name or password"}},
    )
    return r
