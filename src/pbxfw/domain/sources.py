"""The health of what the agent reads and runs: log sources and its own parts.

The agent records one ``SourceStatus`` per log file it follows, and one per
part of its loop (the kernel apply, the ban sets, the ban store, …) while
that part is failing. The CLI (``pbxfw ips status``), the REST API and the
web page read them back. Times are epoch seconds given by the caller: the
domain never reads a clock.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

__all__ = ["AGENT_PART_PREFIX", "SourceStatus"]

#: The ``source`` of a part of the agent's loop (``agent:rules``), as opposed
#: to a log file (an absolute path).
AGENT_PART_PREFIX = "agent:"


@dataclass(frozen=True, slots=True)
class SourceStatus:
    """What the agent last saw of one source.

    ``error`` is empty when the source is healthy; ``since`` is when the
    current state began (failing since, or healthy since); ``failures``
    counts the failed attempts of the current episode (0 when healthy);
    ``node`` is the node whose agent saw it (``''``: stored before nodes
    owned their rows, or a test's).
    """

    source: str
    jail: str
    error: str
    since: float
    failures: int
    updated_at: float
    node: str = ""

    @property
    def ok(self) -> bool:
        return not self.error

    @property
    def is_log(self) -> bool:
        """A log file (as opposed to a part of the agent's loop)."""
        return not self.source.startswith(AGENT_PART_PREFIX)

    def as_json(self) -> dict[str, Any]:
        """Times as epoch seconds, as in ``bans list --json``."""
        return {
            "source": self.source,
            "jail": self.jail,
            "ok": self.ok,
            "error": self.error,
            "since": self.since,
            "failures": self.failures,
            "updated_at": self.updated_at,
            "node": self.node,
        }
