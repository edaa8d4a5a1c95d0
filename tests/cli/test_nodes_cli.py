"""``pbxfw node list|rm`` and ``pbxfw agent --node`` through the real CLI."""

from __future__ import annotations

import json
import socket
import time
from pathlib import Path

import pytest

from pbxfw.domain.nodes import Node
from pbxfw.storage.db import database_url
from pbxfw.storage.repository import Store
from pbxfw.usecases.nodes import NodeService
from tests.helpers import Cli, dump_database


def report(db_path: Path, name: str, age: float, applied: int | None, **extra: object) -> None:
    """Store a node's report made ``age`` seconds ago, as its agent would."""
    store = Store.open(database_url(str(db_path)))
    try:
        now = time.time()
        values: dict[str, object] = {"kernel_bans": 0, "log_lag_bytes": 0, "last_error": ""}
        values |= extra
        node = Node(
            name=name,
            site=str(values.pop("site", "default")),
            registered_at=now - 100,
            started_at=now - 100,
            last_seen=now - age,
            applied_revision=applied,
            version="0.1.0",
            **values,  # type: ignore[arg-type]
        )
        NodeService(store).report(node)
    finally:
        store.close()


def test_node_list_is_empty_and_says_how_a_node_appears(cli: Cli) -> None:
    cli("init")
    result = cli("node", "list")
    assert result.exit_code == 0 and "`pbxfw agent`" in result.stdout
    assert json.loads(cli("node", "list", "--json").stdout) == []


def test_node_list_shows_up_stale_and_drifted(cli: Cli, db_path: Path) -> None:
    assert "configuration revision 1" in cli("init").stdout
    stored = 1
    report(db_path, "pbx-up", 1, stored, kernel_bans=42, log_lag_bytes=512)
    report(db_path, "pbx-stale", 45, stored)
    report(db_path, "pbx-drifted", 2, None, last_error="applying the firewall table: [nft] no")
    nodes = {n["name"]: n for n in json.loads(cli("node", "list", "--json").stdout)}
    assert {k: v["state"] for k, v in nodes.items()} == {
        "pbx-up": "up",
        "pbx-stale": "stale",
        "pbx-drifted": "drifted",
    }
    up = nodes["pbx-up"]
    assert (up["site"], up["kernel_bans"], up["log_lag_bytes"], up["version"]) == (
        "default",
        42,
        512,
        "0.1.0",
    )
    assert up["applied_revision"] == up["stored_revision"] == 1
    assert nodes["pbx-drifted"]["applied_revision"] is None
    text = cli("node", "list").stdout
    assert "stored configuration revision 1" in text
    for name, state in (("pbx-up", "up"), ("pbx-stale", "stale"), ("pbx-drifted", "drifted")):
        [line] = [row for row in text.splitlines() if name in row]
        assert state in line
    assert "[nft] no" in text  # printed as text, not Rich markup


def test_node_list_names_each_sites_revision(cli: Cli, db_path: Path) -> None:
    cli("init")
    cli("site", "add", "hq")
    cli("--site", "hq", "network", "add", "HQ", "10.1.0.0/16", "--allow", "sip")
    report(db_path, "pbx-main", 1, 1)
    report(db_path, "pbx-hq", 1, 0, site="hq")  # hq is at revision 1 now
    text = cli("node", "list").stdout
    assert "stored configuration revisions default 1, hq 1" in text
    [line] = [row for row in text.splitlines() if "pbx-hq" in row]
    assert "drifted" in line


def test_node_rm_forgets_a_node_and_names_an_unknown_one(cli: Cli, db_path: Path) -> None:
    cli("init")
    report(db_path, "pbx-1", 1, 1)
    result = cli("node", "rm", "pbx-1")
    assert result.exit_code == 0 and "removed node pbx-1" in result.stdout
    assert json.loads(cli("node", "list", "--json").stdout) == []
    before = dump_database(db_path)
    result = cli("node", "rm", "pbx-1")
    assert result.exit_code == 3  # not found, as `bans rm` and `network rm`
    assert "no node named 'pbx-1'" in result.stderr and "pbxfw node list" in result.stderr
    result = cli("node", "rm", "not a name")
    assert result.exit_code == 2 and "name: 'not a name' is not a node name" in result.stderr
    assert dump_database(db_path) == before


def test_agent_refuses_a_bad_node_name_before_starting(
    cli: Cli, db_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cli("init")
    before = dump_database(db_path)
    result = cli("agent", "--node", "pbx/1")
    assert result.exit_code == 2 and "--node: 'pbx/1' is not a node name" in result.stderr
    result = cli("agent", "--node", "x" * 64)
    assert result.exit_code == 2 and "at most 63" in result.stderr
    monkeypatch.setattr(socket, "gethostname", lambda: "pbx one")
    result = cli("agent")
    assert result.exit_code == 2
    assert "the host name 'pbx one' is not a node name" in result.stderr
    assert "--node NAME" in result.stderr
    assert dump_database(db_path) == before
