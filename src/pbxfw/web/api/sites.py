"""``/api/v1/sites``: the sites (each one configuration); add one, remove one.

A configuration route takes ``?site=NAME`` (default ``default``) to read or
change that site's configuration (web.deps; docs/fleet-sites.md).
"""

from __future__ import annotations

from fastapi import APIRouter, Response, status

from pbxfw.usecases.sites import SiteService
from pbxfw.web.deps import ContextDep
from pbxfw.web.schemas import SiteCreate, SitePublic

__all__ = ["router"]


def list_sites(context: ContextDep) -> list[dict[str, object]]:
    """Every site, by name; the same answer as ``pbxfw site list --json``."""
    return [s.as_json() for s in SiteService(context.store, clock=context.clock).list()]


def create_site(body: SiteCreate, context: ContextDep) -> dict[str, object]:
    """Make a site with the starting configuration of ``pbxfw init``; 409 if it exists."""
    return SiteService(context.store, clock=context.clock).add(body.name).as_json()


def delete_site(name: str, context: ContextDep) -> Response:
    """Remove a site and its configuration; 422 for ``default`` and for a
    site that still has nodes, 404 when there is no such site."""
    SiteService(context.store, clock=context.clock).remove(name)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


def router() -> APIRouter:
    r = APIRouter(prefix="/sites", tags=["sites"])
    r.add_api_route("", list_sites, methods=["GET"], response_model=list[SitePublic])
    r.add_api_route(
        "",
        create_site,
        methods=["POST"],
        status_code=status.HTTP_201_CREATED,
        response_model=SitePublic,
        responses={409: {"description": "a site with that name exists"}},
    )
    r.add_api_route(
        "/{name}",
        delete_site,
        methods=["DELETE"],
        status_code=status.HTTP_204_NO_CONTENT,
        response_class=Response,
        responses={
            404: {"description": "no such site"},
            422: {"description": "the site default, or a site with nodes"},
        },
    )
    return r
