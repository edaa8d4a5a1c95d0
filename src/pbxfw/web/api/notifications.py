"""``/api/v1/notifications``: notification channels (list, add, remove, test; issue 19).

Secrets never come back: every answer carries the masked target
(domain.notifications.masked). ``POST /notifications/{name}/test`` sends a
test message at once and answers 502 with the reason when the channel did
not take it.
"""

from __future__ import annotations

import asyncio
import socket
from typing import Any, Literal

from fastapi import APIRouter, Response, status
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field

from pbxfw.domain.notifications import channel_json
from pbxfw.usecases.notifications import NotifyService
from pbxfw.usecases.notify_send import DeliveryError
from pbxfw.web.deps import ConfigDep
from pbxfw.web.schemas import _Input

__all__ = ["ChannelCreate", "ChannelPublic", "router"]


class ChannelCreate(_Input):
    """A new channel: a webhook (http/https) or e-mail (smtp:// or smtps://) URL."""

    name: str = Field(description="1–64 printable characters, unique in the site")
    url: str = Field(
        description="https://… (webhook) or smtp://USER:PASS@HOST:587?to=A&from=B (e-mail)",
        examples=["https://hooks.slack.com/services/T000/B000/XXXX"],
    )
    template: Literal["generic", "slack", "mattermost", "discord", "email"] | None = Field(
        default=None, description="webhook body; default generic (email for smtp URLs)"
    )


class ChannelNodeStatus(BaseModel):
    node: str
    last_sent_at: float | None
    last_error: str
    last_error_at: float | None
    sent: int
    failed: int
    dropped: int


class ChannelPublic(BaseModel):
    id: int | None
    name: str
    kind: Literal["webhook", "email"]
    template: str
    #: secrets masked
    url: str
    last_sent_at: float | None = None
    last_error: str = ""
    sent: int = 0
    failed: int = 0
    dropped: int = 0
    nodes: list[ChannelNodeStatus] = Field(default_factory=list)


def _service(config: ConfigDep) -> NotifyService:
    return NotifyService(config.store)


def list_channels(config: ConfigDep) -> list[dict[str, Any]]:
    """Every channel of the site, with what the agents saw of it."""
    return [v.as_json() for v in _service(config).listing()]


def create_channel(body: ChannelCreate, config: ConfigDep) -> dict[str, Any]:
    """Add a channel; a bad URL answers 422 naming ``url``, a taken name 409."""
    return channel_json(_service(config).add(body.name, body.url, body.template))


def delete_channel(name: str, config: ConfigDep) -> Response:
    _service(config).remove(name)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


async def test_channel(name: str, config: ConfigDep) -> Response:
    """Send a test message now: 200 ``{"sent": true}``, or 502 with the reason."""
    service = _service(config)
    try:
        # The delivery blocks (up to its timeout): off the event loop.
        await asyncio.to_thread(service.test, name, node=socket.gethostname())
    except DeliveryError as exc:
        return JSONResponse({"sent": False, "detail": str(exc)}, status.HTTP_502_BAD_GATEWAY)
    return JSONResponse({"sent": True})


def router() -> APIRouter:
    r = APIRouter(tags=["notifications"])
    missing: dict[int | str, dict[str, Any]] = {404: {"description": "no such channel"}}
    r.add_api_route(
        "/notifications",
        list_channels,
        methods=["GET"],
        response_model=list[ChannelPublic],
    )
    r.add_api_route(
        "/notifications",
        create_channel,
        methods=["POST"],
        response_model=ChannelPublic,
        status_code=status.HTTP_201_CREATED,
    )
    r.add_api_route(
        "/notifications/{name}",
        delete_channel,
        methods=["DELETE"],
        status_code=status.HTTP_204_NO_CONTENT,
        response_class=Response,
        responses=missing,
    )
    r.add_api_route(
        "/notifications/{name}/test",
        test_channel,
        methods=["POST"],
        responses=missing | {502: {"description": "the channel did not take the message"}},
    )
    return r
