"""``/api/v1/nodes``: the PBXs running the agent; forget one."""

from __future__ import annotations

from fastapi import APIRouter, Response, status

from pbxfw.usecases.nodes import NodeService
from pbxfw.web.deps import ContextDep
from pbxfw.web.schemas import NodePublic

__all__ = ["router"]


def list_nodes(context: ContextDep) -> list[dict[str, object]]:
    """Every node with its state (up, stale, drifted); the same answer as
    ``pbxfw node list --json``."""
    return NodeService(context.store, clock=context.clock).listing().as_json()


def delete_node(name: str, context: ContextDep) -> Response:
    """Forget the node ``name``; a node whose agent still runs registers again
    at its next report (within 5 s)."""
    NodeService(context.store, clock=context.clock).remove(name)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


def router() -> APIRouter:
    r = APIRouter(prefix="/nodes", tags=["nodes"])
    r.add_api_route("", list_nodes, methods=["GET"], response_model=list[NodePublic])
    r.add_api_route(
        "/{name}",
        delete_node,
        methods=["DELETE"],
        status_code=status.HTTP_204_NO_CONTENT,
        response_class=Response,
        responses={404: {"description": "no such node"}},
    )
    return r
