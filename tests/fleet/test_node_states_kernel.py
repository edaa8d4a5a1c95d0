"""``pbxfw node list`` with real agents: ``up``, ``drifted`` and ``stale`` (issue 16).

Three real ``pbxfw agent`` processes (nodes a, b, c: the ``fleet`` fixture)
on one PostgreSQL, and the real ``pbxfw node list --json`` as a process.
After an apply every node is ``up``; c's agent is stopped; a stored change
not applied makes the running nodes ``drifted``; applying it makes them
``up`` again while c stays behind; c started again loads it and is ``up``.

``stale`` means no report for 30 s. Instead of waiting 30 s, the reader
runs with its clock moved ahead (libfaketime, Debian's ``faketime``) so
that its ``now`` is 30.5 s after c's last report, once a and b have reported
again after that report: to that reader c is silent for 30.5 s and a and b
for less than 29 s, which is exactly what a reader 30 s later would see of
a stopped agent and two running ones (they report every 5 s). The reader's
clock is the only thing moved: every report is the agents' own.
"""

from __future__ import annotations

import glob
import json
import time
from typing import Any

import pytest

from tests.agent.agent_process import wait_until
from tests.fleet.nodes import Fleet, Node

pytestmark = pytest.mark.kernel


def libfaketime() -> str:
    found = sorted(glob.glob("/usr/lib/*/faketime/libfaketime.so.1"))
    if not found:
        pytest.skip("libfaketime is not installed (apt-get install faketime)")  # fails in CI
    return found[0]


def node_list(fleet: Fleet, now: float | None = None) -> dict[str, dict[str, Any]]:
    """``pbxfw node list --json`` by name; ``now``: the reader's clock reads that
    (epoch seconds) when it starts, moved by libfaketime."""
    env = None
    if now is not None:
        env = {
            "LD_PRELOAD": libfaketime(),
            "FAKETIME": f"{now - time.time():+.3f}",
            "FAKETIME_DONT_FAKE_MONOTONIC": "1",
        }
    answer = fleet.pbxfw("node", "list", "--json", env=env)
    assert answer.returncode == 0, answer.stderr
    return {n["name"]: n for n in json.loads(answer.stdout)}


def states(listing: dict[str, dict[str, Any]]) -> dict[str, str]:
    return {name: node["state"] for name, node in listing.items()}


def applied(fleet: Fleet, node: Node) -> None:
    answer = fleet.pbxfw("apply", "--netns", node.ns, "--json")
    assert answer.returncode == 0, answer.stderr


def reported_after(fleet: Fleet, names: tuple[str, ...], when: float) -> bool:
    listing = node_list(fleet)
    return all(listing[name]["last_seen"] > when for name in names)


def test_node_list_shows_up_drifted_and_stale_with_real_agents(fleet: Fleet) -> None:
    a, _, c = fleet.nodes
    applied(fleet, a)
    took = wait_until(lambda: set(states(node_list(fleet)).values()) == {"up"}, 10, 0.2)
    assert took is not None, node_list(fleet)
    assert sorted(node_list(fleet)) == ["a", "b", "c"]

    fleet.stop(c)
    last = node_list(fleet)["c"]["last_seen"]
    added = fleet.pbxfw("network", "add", "Branch", "192.0.2.0/24", "--allow", "sip")
    assert added.returncode == 0, added.stderr
    # Seconds after c stopped: not stale yet; nobody holds the stored revision.
    listing = node_list(fleet)
    assert states(listing) == {"a": "drifted", "b": "drifted", "c": "drifted"}, listing
    assert listing["a"]["applied_revision"] == listing["a"]["stored_revision"] - 1

    # 30.5 s after c's last report, a and b having reported since.
    took = wait_until(lambda: reported_after(fleet, ("a", "b"), last + 2.5), 10, 0.25)
    assert took is not None, node_list(fleet)
    later = node_list(fleet, now=last + 30.5)
    assert states(later) == {"a": "drifted", "b": "drifted", "c": "stale"}, later
    assert later["c"]["seconds_since_report"] >= 30
    text = fleet.pbxfw(
        "node",
        "list",
        env={"LD_PRELOAD": libfaketime(), "FAKETIME": f"{last + 30.5 - time.time():+.3f}"},
    )
    assert text.returncode == 0 and "stale" in text.stdout and "drifted" in text.stdout, text

    # Applied: a and b load it and are up; c, stopped, stays stale (stale wins).
    applied(fleet, a)
    took = wait_until(
        lambda: states(node_list(fleet, now=last + 30.5)) == {"a": "up", "b": "up", "c": "stale"},
        10,
        0.25,
    )
    assert took is not None, node_list(fleet, now=last + 30.5)
    now = node_list(fleet)
    assert (now["a"]["state"], now["b"]["state"]) == ("up", "up"), now

    # c started again: it loads the applied revision and reports it.
    fleet.start(c)
    took = wait_until(
        lambda: states(node_list(fleet)) == {"a": "up", "b": "up", "c": "up"}, 15, 0.25
    )
    assert took is not None, (node_list(fleet), c.log.read_text()[-3000:])
