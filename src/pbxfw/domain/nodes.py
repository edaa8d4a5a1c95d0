"""Nodes: the PBXs that run the agent, and the state ``pbxfw node list`` shows.

A *node* is one PBX running ``pbxfw agent``, in one *site* (one
configuration; until sites exist every node is in ``default``). The agent
registers its node when it starts and reports every ``REPORT_SECONDS``
(pbxfw.agent.node); readers decide the node's state from the report and
their own ``now`` with :func:`node_state`:

- ``stale``: no report for ``STALE_SECONDS`` (the agent stopped, hangs, or
  cannot reach the database); wins over the others, since what a silent
  node last said may no longer hold;
- ``drifted``: the configuration revision in the node's kernel is not the
  stored one (a change saved but not applied, a node that cannot apply, or
  never applied: ``applied_revision`` None);
- ``up``: reporting, and its kernel holds the stored revision.

Pure: times are epoch seconds given by the caller.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from pbxfw.errors import FieldError, ValidationError

__all__ = [
    "DEFAULT_SITE",
    "NODE_NAME_MAX",
    "REPORT_SECONDS",
    "STALE_SECONDS",
    "Node",
    "NodeState",
    "node_state",
    "validate_node_name",
]

#: The site of every node until sites exist (issue 16: a single PBX never needs the word).
DEFAULT_SITE = "default"
#: Seconds between two reports of a running agent.
REPORT_SECONDS = 5.0
#: A node without a report for this long is ``stale`` (six missed reports).
STALE_SECONDS = 30.0
#: A node name is one DNS label's length at most (a host name usually is one).
NODE_NAME_MAX = 63

#: The first character is a letter or a digit (as in a host name): a name
#: starting with "-" reads as an option on a command line, and "." or ".."
#: as a path step in a URL (``/api/v1/nodes/..``).
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")


class NodeState(StrEnum):
    UP = "up"
    STALE = "stale"
    DRIFTED = "drifted"


def validate_node_name(name: str, field: str = "node") -> str:
    """``name`` if it is a valid node name: 1–63 letters, digits, ``-``, ``_``, ``.``,
    starting with a letter or a digit.

    Raises :class:`ValidationError` on ``field`` naming the fix.
    """
    if not name:
        raise ValidationError(FieldError(field, "a node name cannot be empty"))
    if len(name) > NODE_NAME_MAX:
        raise ValidationError(
            FieldError(
                field,
                f"{name[:20]!r}… is {len(name)} characters long; "
                f"a node name has at most {NODE_NAME_MAX}",
            )
        )
    if not _NAME.fullmatch(name):
        raise ValidationError(
            FieldError(
                field,
                f"{name!r} is not a node name: use letters, digits, '-', '_' and '.' "
                "only, starting with a letter or a digit",
            )
        )
    return name


@dataclass(frozen=True, slots=True)
class Node:
    """What a node last reported (times in epoch seconds, by the node's clock).

    ``applied_revision``: the configuration revision loaded in its kernel
    (None: none applied yet); ``kernel_bans``: the bans (address or subnet
    and jail) its kernel's ban sets hold; ``log_lag_bytes``: bytes already
    written to the logs it follows that it has not read yet (0: caught up;
    docs/fleet-nodes.md); ``last_error``: one line about a failing part of
    its agent ("" when none fails).
    """

    name: str
    site: str
    registered_at: float
    started_at: float
    last_seen: float
    applied_revision: int | None
    kernel_bans: int
    version: str
    log_lag_bytes: int
    last_error: str

    def as_json(self, now: float, stored_revision: int) -> dict[str, Any]:
        """The node as ``pbxfw node list --json`` and ``GET /api/v1/nodes`` show it."""
        return {
            "name": self.name,
            "site": self.site,
            "state": str(node_state(self, now, stored_revision)),
            "last_seen": self.last_seen,
            "seconds_since_report": round(max(0.0, now - self.last_seen), 3),
            "applied_revision": self.applied_revision,
            "stored_revision": stored_revision,
            "kernel_bans": self.kernel_bans,
            "version": self.version,
            "log_lag_bytes": self.log_lag_bytes,
            "last_error": self.last_error,
            "started_at": self.started_at,
            "registered_at": self.registered_at,
        }


def node_state(node: Node, now: float, stored_revision: int) -> NodeState:
    """``stale``, ``drifted`` or ``up``, as the module docstring defines them.

    Stale when ``now - last_seen >= STALE_SECONDS``; a report from the
    future (the node's clock ahead of the reader's) counts as fresh.
    """
    if now - node.last_seen >= STALE_SECONDS:
        return NodeState.STALE
    if node.applied_revision != stored_revision:
        return NodeState.DRIFTED
    return NodeState.UP
