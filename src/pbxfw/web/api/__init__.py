"""The REST API (``/api/v1``): one router per resource, combined here.

Every route but ``POST /api/v1/auth/token`` requires a bearer token; the
routes are thin: parse, call one use case, shape the answer.
"""

from __future__ import annotations

from fastapi import APIRouter, Depends

from pbxfw.web.api import (
    apply,
    auth,
    bans,
    check,
    countries,
    feeds,
    ips,
    networks,
    nodes,
    services,
    settings,
    sites,
)
from pbxfw.web.deps import bearer_admin

__all__ = ["PREFIX", "api_router"]

PREFIX = "/api/v1"


def api_router() -> APIRouter:
    """The whole API under ``/api/v1``, built fresh for each application."""
    root = APIRouter(prefix=PREFIX)
    root.include_router(auth.router())
    protected = APIRouter(dependencies=[Depends(bearer_admin)])
    for module in (
        networks,
        services,
        settings,
        check,
        bans,
        apply,
        ips,
        nodes,
        sites,
        countries,
        feeds,
    ):
        protected.include_router(module.router())
    root.include_router(protected)
    return root
