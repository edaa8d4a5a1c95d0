"""``/api/v1/feeds``: blocklist feeds (list, create, read, delete, ask for an update)."""

from __future__ import annotations

import time
from typing import Any, Literal

from fastapi import APIRouter, Response, status
from pydantic import BaseModel, Field

from pbxfw.usecases.feeds import FeedService
from pbxfw.web.deps import ConfigDep
from pbxfw.web.schemas import _Input

__all__ = ["FeedCreate", "FeedPublic", "FeedStatusPublic", "router"]


class FeedCreate(_Input):
    """A new feed; the agents fetch it at their next tick, then every ``every``."""

    name: str = Field(description="1-24 letters, digits, '_' or '-', starting with a letter")
    url: str = Field(description="http:// or https:// address of the list")
    format: Literal["plain", "apiban", "json"] = "plain"
    every: str = Field("4h", description="fetch period: 4h, 30m, 1d (5m to 7d)")
    scope: list[str] = Field(
        default_factory=lambda: ["all"], description="service keys, or ['all'] for every packet"
    )
    headers: list[str] = Field(
        default_factory=list, description="'Name: value' sent with each fetch"
    )


class FeedStatusPublic(BaseModel):
    """What one node's agent last did with the feed (times: epoch seconds)."""

    node: str
    feed: str
    last_fetch: float | None
    last_success: float | None
    next_fetch: float | None
    entries: int
    refused: dict[str, int]
    error: str
    held_back: bool


class FeedPublic(BaseModel):
    id: int | None
    name: str
    url: str
    format: str
    every: str
    scope: list[str]
    headers: list[str] = Field(description="header names; values shown as ***")
    status: list[FeedStatusPublic] = Field(default_factory=list)


def _service(config: ConfigDep) -> FeedService:
    return FeedService(config.store)


def _view(service: FeedService, name: str) -> dict[str, Any]:
    feed = service.feed(name)
    for view in service.views():
        if view.feed.name == feed.name:
            return view.as_json()
    return {}  # removed meanwhile: the feed() above answered


def list_feeds(config: ConfigDep) -> list[dict[str, Any]]:
    """Every feed with each node's status of it."""
    return [v.as_json() for v in _service(config).views()]


def create_feed(body: FeedCreate, config: ConfigDep) -> dict[str, Any]:
    """Add a feed; a bad field answers 422 naming it, nothing stored."""
    service = _service(config)
    feed = service.add(
        body.name,
        body.url,
        format=body.format,
        every=body.every,
        scope=body.scope,
        headers=body.headers,
    )
    return _view(service, feed.name)


def read_feed(name: str, config: ConfigDep) -> dict[str, Any]:
    return _view(_service(config), name)


def delete_feed(name: str, config: ConfigDep) -> Response:
    _service(config).remove(name)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


def update_feed(name: str, config: ConfigDep) -> dict[str, Any]:
    """Ask the agents to fetch the feed at their next tick (202: asked, not done)."""
    service = _service(config)
    service.request_update(name, time.time())
    return _view(service, name)


def router() -> APIRouter:
    r = APIRouter(tags=["feeds"])
    errors: dict[int | str, dict[str, Any]] = {404: {"description": "no such feed"}}
    r.add_api_route("/feeds", list_feeds, methods=["GET"], response_model=list[FeedPublic])
    r.add_api_route(
        "/feeds",
        create_feed,
        methods=["POST"],
        response_model=FeedPublic,
        status_code=status.HTTP_201_CREATED,
    )
    r.add_api_route(
        "/feeds/{name}", read_feed, methods=["GET"], response_model=FeedPublic, responses=errors
    )
    r.add_api_route(
        "/feeds/{name}",
        delete_feed,
        methods=["DELETE"],
        status_code=status.HTTP_204_NO_CONTENT,
        response_class=Response,
        responses=errors,
    )
    r.add_api_route(
        "/feeds/{name}/update",
        update_feed,
        methods=["POST"],
        response_model=FeedPublic,
        status_code=status.HTTP_202_ACCEPTED,
        responses=errors,
    )
    return r
