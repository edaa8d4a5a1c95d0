"""The PBXs page: every node (a PBX running the agent), its state, and forgetting one."""

from __future__ import annotations

from fastapi import Request
from fastapi.responses import Response

from pbxfw.errors import PbxfwError
from pbxfw.usecases.nodes import NodeService
from pbxfw.web.deps import AdminSession, ContextDep
from pbxfw.web.pages.common import CsrfForm, redirect, render

__all__ = ["nodes_page", "remove_node"]


def nodes_page(request: Request, context: ContextDep, session: AdminSession) -> Response:
    listing = NodeService(context.store, clock=context.clock).listing()
    rows = [(node, str(listing.state(node))) for node in listing.nodes]
    return render(
        request,
        "nodes.html",
        {"rows": rows, "stored_revision": listing.stored_revision, "read_at": listing.now},
        session=session,
    )


def remove_node(
    name: str, request: Request, context: ContextDep, session: AdminSession, form: CsrfForm
) -> Response:
    try:
        NodeService(context.store, clock=context.clock).remove(name)
    except PbxfwError as exc:
        return redirect(request, "/nodes", str(exc), "error")
    return redirect(
        request,
        "/nodes",
        f"Node “{name}” removed. If its agent still runs it appears again within 5 s.",
    )
