"""The agent's node part: register this PBX as a node and report its state.

At start and every ``REPORT_SECONDS`` (sooner when the revision in the
kernel changed) the agent stores one small report (usecases.nodes): the
time by its clock, the configuration revision its kernel holds
(``Rules.applied_revision``: set only once a whole table was loaded), the
bans its kernel's sets hold (``BanSets``), its pbxfw version, the bytes of
its logs not read yet, and its current failure in one line. ``Agent``
runs :meth:`NodeReporter.report` through agent.health as the part
``agent:node``: a report that fails is logged once and retried with
backoff, and never stops the agent.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from pbxfw import __version__
from pbxfw.agent.health import Health
from pbxfw.domain.nodes import DEFAULT_SITE, REPORT_SECONDS, Node
from pbxfw.storage.repository import Store
from pbxfw.usecases.nodes import NodeService

__all__ = ["PART", "NodeReporter", "last_error"]

#: The agent part that reports (agent.health, agent.daemon).
PART = "agent:node"

log = logging.getLogger("pbxfw.agent")


def last_error(health: Health) -> str:
    """The newest failure of the agent's parts and sources, on one line
    ("" when nothing fails); ``(and N more failing)`` when several fail."""
    # Its own failure is left out: the report that carries it is the one
    # that succeeded.
    failing = sorted((s for s in health.failing() if s.source != PART), key=lambda s: s.updated_at)
    if not failing:
        return ""
    newest = failing[-1]
    text = f"{health.label(newest.source)}: {newest.error}"
    if len(failing) > 1:
        text += f" (and {len(failing) - 1} more failing)"
    return text


class NodeReporter:
    """This agent's node: its name and the report it stores (see the module docstring)."""

    def __init__(
        self,
        store: Store,
        health: Health,
        *,
        name: str,
        clock: Callable[[], float],
        applied_revision: Callable[[], int | None],
        kernel_bans: Callable[[float], int],
        unread_bytes: Callable[[], int],
        site: str = DEFAULT_SITE,
    ) -> None:
        self.name = name
        self.site = site
        self.health = health
        self.clock = clock
        self.nodes = NodeService(store, clock=clock)
        self._applied_revision = applied_revision
        self._kernel_bans = kernel_bans
        self._unread_bytes = unread_bytes
        self.started_at = clock()
        #: when the last report was stored (0: never), and the revision it said
        self.last_report = 0.0
        self._reported_revision: int | None = None
        self._registered = False

    def due(self, now: float) -> bool:
        """A report is due: ``REPORT_SECONDS`` since the last one, or the
        kernel's revision changed since (the node's state follows an apply at once)."""
        return (
            now - self.last_report >= REPORT_SECONDS
            or self._applied_revision() != self._reported_revision
        )

    def report(self) -> None:
        """Store this node's report (one UPDATE; an INSERT when its row is missing)."""
        now = self.clock()
        revision = self._applied_revision()
        node = Node(
            name=self.name,
            site=self.site,
            registered_at=now,
            started_at=self.started_at,
            last_seen=now,
            applied_revision=revision,
            kernel_bans=self._kernel_bans(now),
            version=__version__,
            log_lag_bytes=self._unread_bytes(),
            last_error=last_error(self.health),
        )
        # A failed write stays due: Health's backoff paces the attempts.
        made = self.nodes.report(node)
        self.last_report, self._reported_revision = now, revision
        if not self._registered:
            log.info(
                "node %s (site %s): %s; reporting every %g s",
                self.name,
                self.site,
                "registered" if made else "known already",
                REPORT_SECONDS,
            )
        elif made:
            log.info("node %s was removed (pbxfw node rm): registered again", self.name)
        self._registered = True
