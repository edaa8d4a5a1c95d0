"""``/api/v1/networks``: list, create, read, change, delete."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Response, status

from pbxfw.domain.network_model import Network
from pbxfw.errors import NotFoundError
from pbxfw.usecases.config import ConfigService, NetworkChange, network_json
from pbxfw.web.deps import ConfigDep, ContextDep
from pbxfw.web.schemas import NetworkCreate, NetworkPublic, NetworkUpdate

__all__ = ["router"]

#: Notes about a stored value (e.g. host bits zeroed) travel in this header.
NOTE_HEADER = "X-Pbxfw-Note"


def _notes(response: Response, notes: list[str]) -> None:
    if notes:
        # Header values must be latin-1; the notes are ASCII (addresses, words).
        response.headers[NOTE_HEADER] = "; ".join(notes).encode("ascii", "replace").decode()


def _by_id(config: ConfigService, network_id: int) -> Network:
    """The network with this id; the use case also matches names, the API does not."""
    network = config.network(network_id)
    if network.id != network_id:
        raise NotFoundError(f"no network with id {network_id}")
    return network


async def list_networks(context: ContextDep, config: ConfigDep) -> Response:
    """Every network, in the order they were added."""
    # In the event loop, not the thread pool: a cache hit costs one small
    # query, less than the hop to a worker thread.
    body = context.cached("networks", lambda: [network_json(n) for n in config.networks()], config)
    return Response(content=body, media_type="application/json")


def create_network(body: NetworkCreate, config: ConfigDep, response: Response) -> dict[str, Any]:
    """Add a network; services not named keep the verdict their addresses had."""
    network, notes = config.add_network(NetworkChange(**body.model_dump()))
    _notes(response, notes)
    return network_json(network)


def read_network(network_id: int, config: ConfigDep) -> dict[str, Any]:
    return network_json(_by_id(config, network_id))


def update_network(
    network_id: int, body: NetworkUpdate, config: ConfigDep, response: Response
) -> dict[str, Any]:
    """Change only the fields given (the permanent networks keep their subnet)."""
    _by_id(config, network_id)
    network, notes = config.update_network(
        network_id, NetworkChange(**body.model_dump(exclude_unset=True))
    )
    _notes(response, notes)
    return network_json(network)


def delete_network(network_id: int, config: ConfigDep) -> Response:
    """Remove a network; the permanent ones answer 409."""
    _by_id(config, network_id)
    config.remove_network(network_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


def router() -> APIRouter:
    r = APIRouter(prefix="/networks", tags=["networks"])
    errors: dict[int | str, dict[str, Any]] = {404: {"description": "no such network"}}
    r.add_api_route("", list_networks, methods=["GET"], response_model=list[NetworkPublic])
    r.add_api_route(
        "",
        create_network,
        methods=["POST"],
        response_model=NetworkPublic,
        status_code=status.HTTP_201_CREATED,
        responses={409: {"description": "name or subnet already used"}},
    )
    r.add_api_route(
        "/{network_id}",
        read_network,
        methods=["GET"],
        response_model=NetworkPublic,
        responses=errors,
    )
    r.add_api_route(
        "/{network_id}",
        update_network,
        methods=["PATCH"],
        response_model=NetworkPublic,
        responses=errors,
    )
    r.add_api_route(
        "/{network_id}",
        delete_network,
        methods=["DELETE"],
        status_code=status.HTTP_204_NO_CONTENT,
        response_class=Response,
        responses={**errors, 409: {"description": "a permanent network"}},
    )
    return r
