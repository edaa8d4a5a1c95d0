"""Feeds per site (issue 17): each site its own feeds, each node's status seen in its site."""

from __future__ import annotations

import time

from pbxfw.domain.nodes import Node
from pbxfw.storage.feeds import FeedStatus
from pbxfw.usecases import ConfigService
from pbxfw.usecases.feeds import FeedService
from pbxfw.usecases.nodes import NodeService
from pbxfw.usecases.sites import SiteService


def test_feeds_and_their_status_belong_to_their_site(svc: ConfigService) -> None:
    SiteService(svc.store).add("branch")
    here, there = FeedService(svc.store), FeedService(svc.store, site="branch")
    now = time.time()
    nodes = NodeService(svc.store)
    nodes.report(Node("pbx-a", "default", now, now, now, None, 0, "t", 0, ""))
    nodes.report(Node("pbx-b", "branch", now, now, now, None, 0, "t", 0, ""))
    here.add("drop", "https://a/drop.txt")
    there.add("drop", "https://b/drop.txt", scope="sip")
    here.save_status(FeedStatus(node="pbx-a", feed="drop", entries=1))
    there.save_status(FeedStatus(node="pbx-b", feed="drop", entries=2))
    [mine] = here.views()
    assert (mine.feed.url, [s.node for s in mine.statuses]) == ("https://a/drop.txt", ["pbx-a"])
    [theirs] = there.views()
    assert (theirs.feed.scope, [s.entries for s in theirs.statuses]) == (("sip",), [2])
    here.remove("drop")
    assert here.feeds() == []
    assert [s.node for s in there.views()[0].statuses] == ["pbx-b"]
