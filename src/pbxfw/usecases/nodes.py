"""Nodes: what each PBX's agent reports, for ``pbxfw node``, ``/api/v1/nodes`` and the PBXs page.

The agent (pbxfw.agent.node) calls :meth:`NodeService.report` at start and
every ``REPORT_SECONDS``; the CLI, the REST API and the web page call
:meth:`NodeService.listing` and :meth:`NodeService.remove`. A node's state
is decided when it is read (domain.nodes.node_state), from its last report,
the reader's clock and the stored configuration revision, so a node that
stopped reporting turns ``stale`` without anyone writing.

``remove`` deletes the row and the health of the node's sources (a PBX
that is gone must not leave a failing source on the IPS page); its log
positions and counters stay (the counters are part of the fleet's totals).
A node whose agent still runs registers again at its next report (within
5 s). Stop the agent first to remove a node for good.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

from pbxfw.domain.nodes import DEFAULT_SITE, Node, NodeState, node_state, validate_node_name
from pbxfw.errors import NotFoundError
from pbxfw.storage.nodes import nodes as _stored_nodes
from pbxfw.storage.nodes import remove_node, save_node
from pbxfw.storage.repository import Store
from pbxfw.storage.sites import site_revisions
from pbxfw.storage.source_status import forget_source_statuses

__all__ = ["NodeListing", "NodeService", "one_line"]

#: The longest ``last_error`` stored (it is one table cell).
ERROR_MAX = 500
#: The longest ``version`` stored (the column's size).
VERSION_MAX = 64


def one_line(text: str, limit: int = ERROR_MAX) -> str:
    """``text`` on one line of printable characters, at most ``limit`` long."""
    flat = " ".join("".join(c if c.isprintable() else " " for c in text).split())
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"


@dataclass(frozen=True, slots=True)
class NodeListing:
    """Every node with the stored revision and the moment they were read.

    ``stored_revision`` is the site ``default``'s; ``site_revisions`` every
    site's, against which each node is judged (its own site's configuration).
    """

    nodes: list[Node]
    stored_revision: int
    now: float
    site_revisions: dict[str, int] = field(default_factory=dict)

    def revision_of(self, node: Node) -> int:
        """The stored revision of ``node``'s site."""
        return self.site_revisions.get(node.site, self.stored_revision)

    def state(self, node: Node) -> NodeState:
        return node_state(node, self.now, self.revision_of(node))

    def as_json(self) -> list[dict[str, Any]]:
        """The answer of ``pbxfw node list --json`` and ``GET /api/v1/nodes``."""
        return [n.as_json(self.now, self.revision_of(n)) for n in self.nodes]


class NodeService:
    """Reports, the list of nodes and their removal (one unit of work each)."""

    def __init__(self, store: Store, clock: Callable[[], float] = time.time) -> None:
        # Nodes are the fleet's; the revisions shown are each node's own site's.
        self.store = store.at_site(DEFAULT_SITE)
        self.clock = clock

    def report(self, node: Node) -> bool:
        """Store ``node``'s report (one UPDATE); True when its row was made
        (first start, or reporting again after ``remove``)."""
        validate_node_name(node.name)
        clean = replace(
            node,
            version=one_line(node.version, VERSION_MAX),
            last_error=one_line(node.last_error),
            kernel_bans=max(0, node.kernel_bans),
            log_lag_bytes=max(0, node.log_lag_bytes),
        )
        with self.store.write() as repo:
            return save_node(repo, clean)

    def listing(self, now: float | None = None) -> NodeListing:
        """Every node and the stored revision, read in one snapshot; states at
        ``now`` (default: this service's clock)."""
        with self.store.read() as repo:
            found = _stored_nodes(repo)
            stored = repo.revision()
            revisions = site_revisions(repo)
        return NodeListing(found, stored, self.clock() if now is None else now, revisions)

    def remove(self, name: str) -> None:
        """Forget the node ``name`` (see the module docstring: a running agent
        registers it again). Raises ``ValidationError`` for a name no node can
        have, ``NotFoundError`` when there is no such node."""
        validate_node_name(name, "name")
        with self.store.write() as repo:
            if not remove_node(repo, name):
                raise NotFoundError(f"no node named {name!r}; see `pbxfw node list`")
            forget_source_statuses(repo, node=name)
