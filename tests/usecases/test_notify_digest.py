"""The daily digest's figures (issue 19): what fails on the site's nodes that
still report, each named; not another site's nodes, not a stale node's last
word, not rows no node owns; the caller counts before its first report."""

from __future__ import annotations

from pbxfw.domain.nodes import Node
from pbxfw.domain.notify_messages import digest_message
from pbxfw.domain.sources import SourceStatus
from pbxfw.usecases import ConfigService
from pbxfw.usecases.nodes import NodeService
from pbxfw.usecases.notifications import NotifyService
from pbxfw.usecases.sites import SiteService
from pbxfw.usecases.source_status import record_source_statuses

NOW = 1_796_450_000.0


def _node(name: str, site: str, seen: float) -> Node:
    return Node(name, site, seen, seen, seen, None, 0, "", 0, "")


def test_the_digest_says_what_fails_on_the_sites_reporting_nodes(svc: ConfigService) -> None:
    SiteService(svc.store).add("other")
    nodes = NodeService(svc.store)
    for node in (
        _node("a", "default", NOW - 1),
        _node("b", "default", NOW - 5),
        _node("c", "default", NOW - 300),  # stale
        _node("z", "other", NOW - 1),
    ):
        nodes.report(node)
    for name in ("a", "b", "c", "z", "new", ""):
        failing = SourceStatus("/var/log/auth.log", "ssh", f"gone on {name}", 1.0, 1, 1.0, name)
        healthy = SourceStatus("/var/log/secure", "ssh", "", 1.0, 0, 1.0, name)
        record_source_statuses(svc.store, [failing, healthy], node=name)
    facts = NotifyService(svc.store).digest_facts(NOW, "new")  # "new": not reported yet
    assert sorted(facts.failing) == [
        ("a", "/var/log/auth.log", "gone on a"),
        ("b", "/var/log/auth.log", "gone on b"),
        ("new", "/var/log/auth.log", "gone on new"),
    ]
    assert NotifyService(svc.store, site="other").digest_facts(NOW, "z").failing == [
        ("z", "/var/log/auth.log", "gone on z")
    ]


def test_the_digest_message_names_the_failing_node() -> None:
    message = digest_message(
        [], 0, [("b", "agent:rules", "nft: refused")], ["c"], NOW, "default", "a", 1
    )
    assert "Failing: agent:rules on b: nft: refused" in message.lines
    assert message.details["failing"] == [
        {"node": "b", "part": "agent:rules", "error": "nft: refused"}
    ]
    assert message.details["stale_nodes"] == ["c"]
