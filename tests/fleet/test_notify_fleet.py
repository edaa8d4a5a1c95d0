"""Notifications under least privilege (issue 19) on a real PostgreSQL: a real
``pbxfw agent --node a`` connected as its node's login role (``pbxfw fleet
roles``) reads its site's channels, tells a real HTTP receiver about the ban
it detects, and stores its own channel status, which the administrator's
``notify list`` shows; PostgreSQL refuses the node another node's status and
any change of the channels."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from tests.agent.test_agent_kernel import wait_until
from tests.fleet.nodes import Fleet
from tests.fleet.test_roles import Roles, refused, roles
from tests.kernel.lab import Lab, require_kernel
from tests.notify_servers import Receiver, receiver

__all__ = ["receiver", "roles"]  # the fixtures, used by name


def test_an_agent_under_its_node_role_notifies_and_reports(
    roles: Roles, cli: Any, tmp_path: Path, db_url: str, receiver: Receiver
) -> None:
    require_kernel()
    assert cli("notify", "add", "hook", receiver.url + "/hook").exit_code == 0
    with Lab(f"nf{os.getpid() % 10000}") as lab:
        fleet = Fleet(lab, db_url, tmp_path)
        try:
            fleet.configure(maxretry=3)
            a = fleet.add("a")
            fleet.db = roles.url_as(roles.login)  # the agent connects as its node's role
            fleet.start(a)
            fleet.db = db_url
            a.fail("198.51.100.31", 3)
            got = receiver.wait(1, timeout=20)
            assert got, a.log.read_text()[-4000:]
            assert got[0]["event"] == "bans" and got[0]["node"] == "a"
            assert got[0]["details"]["top_sources"][0]["source"] == "198.51.100.31"

            def reported() -> bool:
                listed = json.loads(cli("notify", "list", "--json").stdout)
                return any(n["node"] == "a" and n["sent"] >= 1 for n in listed[0]["nodes"])

            assert wait_until(reported, 20, 0.2) is not None, a.log.read_text()[-4000:]
            text = a.log.read_text()
            assert "permission denied" not in text and "row-level security" not in text, text
        finally:
            fleet.close()
    with roles.connect(roles.login) as node:
        assert node.execute("SELECT name FROM notify_channels").fetchall() == [("hook",)]
        refused(node, "UPDATE notify_channels SET url = 'http://evil.example/'")
        refused(node, "DELETE FROM notify_channels")
        assert "row-level security" in refused(
            node,
            "INSERT INTO notify_status (node, site, channel, last_error, sent, failed, "
            "dropped, updated_at) VALUES ('b', 'default', 'hook', '', 0, 0, 0, 1)",
        )
