"""Propagation within a second (issue 16): real agents, real nftables, one PostgreSQL.

Three ``pbxfw agent`` processes (nodes a, b, c), each in its own network
namespace with its own state folder and its own Asterisk logs
(tests/fleet/nodes.py), all on one real PostgreSQL database:

- failures written to node a's log ban the attacker in a's kernel, and the
  notification of the stored ban puts it into b's and c's kernels within 1 s;
- node b's listening connection ended by the server (``pg_terminate_backend``):
  b logs it once, keeps taking bans by polling, and listens again;
- ``pbxfw apply`` of a new network: every node loads it at once (the applied
  revision is notified; docs/fleet.md "Propagation").
"""

from __future__ import annotations

import json
import time

import psycopg
import pytest

from tests.agent.test_agent_kernel import wait_until
from tests.fleet.nodes import Fleet, Node, listening  # noqa: F401 - hs-share's tests import it here

pytestmark = pytest.mark.kernel


def listen_pids(db_url: str) -> list[int]:
    conninfo = db_url.replace("postgresql+psycopg://", "postgresql://")
    with psycopg.connect(conninfo, autocommit=True) as admin:
        rows = admin.execute(
            "SELECT pid FROM pg_stat_activity WHERE application_name = 'pbxfw-listen'"
            " AND datname = current_database()"
        ).fetchall()
        return [int(row[0]) for row in rows]


def everywhere(nodes: list[Node], address: str) -> bool:
    return all(address in node.banned() for node in nodes)


def test_a_ban_at_one_node_is_in_every_other_kernel_within_a_second(fleet: Fleet) -> None:
    a, b, c = fleet.nodes
    a.fail("198.51.100.7", 5)
    written = time.monotonic()
    took = wait_until(lambda: everywhere([b, c], "198.51.100.7"), 5, step=0.01)
    assert took is not None, b.log.read_text()[-3000:]
    elapsed = time.monotonic() - written
    assert elapsed <= 1.0, f"in b's and c's kernels after {elapsed:.3f} s"
    assert "198.51.100.7" in a.banned()  # detected there, banned there first
    # Decided at a only: b and c read nothing of it in their own logs.
    assert "198.51.100.7" not in (b.folder / "logs" / "messages").read_text()
    # Three nodes of one fleet, each under its own name.
    nodes = fleet.pbxfw("node", "list", "--json")
    assert nodes.returncode == 0, nodes.stderr
    assert sorted(n["name"] for n in json.loads(nodes.stdout)) == ["a", "b", "c"]


def test_a_lost_listening_connection_polls_and_listens_again(fleet: Fleet) -> None:
    a, b, c = fleet.nodes
    pids = listen_pids(fleet.db)
    assert len(pids) == 3
    conninfo = fleet.db.replace("postgresql+psycopg://", "postgresql://")
    with psycopg.connect(conninfo, autocommit=True) as admin:
        for pid in pids:
            admin.execute("SELECT pg_terminate_backend(%s)", (pid,))
    # Polling meanwhile: a ban made at a still reaches b and c.
    a.fail("198.51.100.8", 5)
    took = wait_until(lambda: everywhere([b, c], "198.51.100.8"), 5, step=0.02)
    assert took is not None, b.log.read_text()[-3000:]
    # Listening again after the backoff; the loss was logged once per agent.
    took = wait_until(lambda: len(listen_pids(fleet.db)) == 3, 10, step=0.1)
    assert took is not None, b.log.read_text()[-3000:]
    time.sleep(1.0)
    for node in fleet.nodes:
        text = node.log.read_text()
        assert text.count("polling the database until it listens again") == 1, text[-3000:]
        assert text.count("listening for bans") == 2, text[-3000:]
    a.fail("198.51.100.9", 5)
    written = time.monotonic()
    took = wait_until(lambda: everywhere([b, c], "198.51.100.9"), 5, step=0.01)
    assert took is not None and time.monotonic() - written <= 1.0


def test_an_applied_configuration_is_loaded_by_every_node_at_once(fleet: Fleet) -> None:
    a, b, c = fleet.nodes
    added = fleet.pbxfw("network", "add", "Branch", "192.0.2.0/24", "--allow", "sip")
    assert added.returncode == 0, added.stderr
    # Stored, not applied: no node loads it (docs/decisions.md, "Changes are staged").
    time.sleep(0.5)
    assert not any("applied configuration revision" in loaded(n) for n in fleet.nodes)
    applied = fleet.pbxfw("apply", "--netns", a.ns, "--json")
    assert applied.returncode == 0, applied.stderr
    written = time.monotonic()
    revision = json.loads(applied.stdout)["revision"]
    line = f"applied configuration revision {revision} "
    took = wait_until(lambda: all(line in loaded(n) for n in (b, c)), 5, 0.02)
    assert took is not None, b.log.read_text()[-3000:]
    assert time.monotonic() - written <= 1.0


def loaded(node: Node) -> str:
    """What ``node``'s agent logged after its first load."""
    text = node.log.read_text()
    return text.split("following ", 1)[1] if "following " in text else ""
