"""A real ``pbxfw agent --node`` in a test namespace shows up in ``pbxfw node list``.

Through the real CLI: the node appears ``up`` with the revision its kernel
holds and the bans of its kernel's sets (a detected one and a manual one);
a stored change not applied makes it ``drifted`` at once, and applying
brings it back ``up`` (the agent reports a new revision without waiting for
its 5 s); once the agent is stopped, its state read 31 s later is ``stale``.
"""

from __future__ import annotations

import json
import os
import subprocess
import time
from typing import Any

from pbxfw.storage.db import database_url
from pbxfw.storage.repository import Store
from pbxfw.usecases.nodes import NodeService
from tests.agent.test_agent_kernel import (  # noqa: F401 - env is a fixture
    ATTACKER,
    PBXFW,
    Env,
    env,
    wait_until,
)
from tests.agent.test_agent_survives_kernel import cli, stop

NODE = "pbx-kernel-1"


def start_agent(e: Env) -> subprocess.Popen[str]:
    with open(e.tmp / "agent.log", "a") as log:
        return subprocess.Popen(
            [
                PBXFW,
                "agent",
                "--node",
                NODE,
                "--netns",
                e.pbx,
                "--db",
                str(e.db),
                "--state-dir",
                str(e.tmp / "state"),
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            text=True,
            env={k: v for k, v in os.environ.items() if k != "PBXFW_NODE"},
        )


def nodes(e: Env) -> dict[str, dict[str, Any]]:
    answer = cli(e, "node", "list", "--json")
    assert answer.returncode == 0, answer.stderr
    return {n["name"]: n for n in json.loads(answer.stdout)}


def node(e: Env) -> dict[str, Any] | None:
    return nodes(e).get(NODE)


def apply(e: Env) -> None:
    answer = cli(e, "apply", "--netns", e.pbx, "--state-dir", str(e.tmp / "state"))
    assert answer.returncode == 0, answer.stderr


def test_a_real_agent_reports_up_drifted_and_stale(env: Env) -> None:  # noqa: F811
    apply(env)
    agent = start_agent(env)
    log = env.tmp / "agent.log"
    try:
        took = wait_until(lambda: (n := node(env)) is not None and n["state"] == "up", 10, 0.2)
        assert took is not None, (node(env), log.read_text()[-3000:])
        first = node(env)
        assert first is not None
        assert first["site"] == "default" and first["version"] == "0.1.0"
        assert first["applied_revision"] == first["stored_revision"]
        assert first["kernel_bans"] == 0 and first["last_error"] == ""
        assert f"node {NODE} (site default): registered" in log.read_text()

        # A detected ban and a manual one: in the kernel, and in the next report.
        env.fail(ATTACKER, 5)
        assert wait_until(lambda: ATTACKER in env.banned(), 2.0) is not None
        assert cli(env, "bans", "add", "203.0.113.5", "--jail", "ssh").returncode == 0
        kernel = env.lab.nft(env.pbx, "list", "set", "inet", "pbxfw", "ban_ssh_v4")
        assert wait_until(
            lambda: (
                "203.0.113.5" in env.lab.nft(env.pbx, "list", "set", "inet", "pbxfw", "ban_ssh_v4")
            ),
            3.0,
        ), kernel
        took = wait_until(lambda: (n := node(env)) is not None and n["kernel_bans"] == 2, 8, 0.2)
        assert took is not None, node(env)
        assert first["last_seen"] < (node(env) or {})["last_seen"]  # it keeps reporting

        # A stored change not applied: drifted at once (the state is computed when read).
        applied = first["applied_revision"]
        assert cli(env, "network", "add", "Branch", "10.79.0.0/16").returncode == 0
        drifted = node(env)
        assert drifted is not None and drifted["state"] == "drifted"
        assert (drifted["applied_revision"], drifted["stored_revision"]) == (applied, applied + 1)
        # Applied: the agent loads it and reports the new revision within a tick or two.
        apply(env)
        took = wait_until(lambda: (n := node(env)) is not None and n["state"] == "up", 3, 0.1)
        assert took is not None, (node(env), log.read_text()[-3000:])
        assert (node(env) or {})["applied_revision"] == applied + 1

        # Stopped: no report any more; read 31 s later it is stale.
        stop(agent)
        last = node(env)
        assert last is not None and last["state"] == "up"
        store = Store.open(database_url(str(env.db)))
        try:
            later = NodeService(store).listing(now=last["last_seen"] + 31)
            assert [(n.name, str(later.state(n))) for n in later.nodes] == [(NODE, "stale")]
        finally:
            store.close()
        time.sleep(0.5)
        assert (node(env) or {})["last_seen"] == last["last_seen"]
    finally:
        stop(agent)
        print(log.read_text()[-3000:])
