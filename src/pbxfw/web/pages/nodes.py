"""The PBXs page: every node (a PBX running the agent), its state, and forgetting one."""

from __future__ import annotations

from fastapi import Request
from fastapi.responses import Response

from pbxfw.errors import PbxfwError
from pbxfw.usecases.nodes import NodeService
from pbxfw.web.deps import AdminSession
from pbxfw.web.pages.common import CsrfForm, redirect, render
from pbxfw.web.pages.sites import SiteContext, chosen_site

__all__ = ["nodes_page", "remove_node"]


def nodes_page(
    request: Request, context: SiteContext, session: AdminSession, filter: str = ""
) -> Response:
    """Every node, or with ``filter=SITE`` only the nodes of that site.

    The filter is not the site the configuration pages work on: nodes are
    fleet-wide, and the page shows them all unless asked.
    """
    listing = NodeService(context.store, clock=context.clock).listing()
    _, sites = chosen_site(request)
    # A node may name a site removed since (pbxfw site rm refuses that, but the
    # node's report can come later): its site is offered in the filter too.
    names = sorted({*sites, *(node.site for node in listing.nodes)})
    shown = [n for n in listing.nodes if not filter or n.site == filter]
    # Each node is judged against its own site's stored revision.
    rows = [(node, str(listing.state(node)), listing.revision_of(node)) for node in shown]
    return render(
        request,
        "nodes.html",
        {
            "rows": rows,
            "total": len(listing.nodes),
            "stored_revision": listing.stored_revision,
            "read_at": listing.now,
            "filter_sites": names if len(names) > 1 else [],
            "filter": filter,
        },
        session=session,
    )


def remove_node(
    name: str, request: Request, context: SiteContext, session: AdminSession, form: CsrfForm
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
