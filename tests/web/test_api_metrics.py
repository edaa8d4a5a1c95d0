"""``GET /metrics`` of a real ``pbxfw serve``: only for the bearer of the metrics token.

The token is the file ``metrics-token`` of the state folder (or
``--metrics-token-file``); without it every scrape is 401, and a token file
that cannot be used stops ``serve`` with exit 2 naming the option. On both
engines (tests/conftest.py).
"""

from __future__ import annotations

import time
from pathlib import Path

import httpx

from pbxfw.storage.aggregates import Tallies
from pbxfw.storage.repository import Store
from pbxfw.usecases.dashboard import record_drops, record_tallies
from tests.web.test_login_server import (  # noqa: F401 - home and servers are fixtures
    Home,
    Server,
    home,
    pbxfw,
    servers,
    start,
)

TOKEN = "s3cret-metrics-token-0123456789"


def test_metrics_answer_only_the_token(home: Home, servers: list[Server]) -> None:  # noqa: F811
    home.state.mkdir(parents=True, exist_ok=True)
    (home.state / "metrics-token").write_text(TOKEN + "\n")
    store = Store.open(home.db)
    try:
        now = time.time()
        hour = int(now) - int(now) % 3600
        record_tallies(
            store,
            "pbx1",
            Tallies({(hour, "ssh", "invalid_user"): 7}, {}, {("ssh", "invalid_user"): 7}, {}),
            now,
        )
        record_drops(
            store, "pbx1", {("jail", "ssh"): (5, 300), ("default_deny", ""): (2, 120)}, now
        )
    finally:
        store.close()
    server = start(home, servers)
    with httpx.Client(base_url=server.url, timeout=10) as c:
        for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": TOKEN}):
            answer = c.get("/metrics", headers=headers)
            assert answer.status_code == 401, headers
            assert "metrics token" in answer.text
            assert TOKEN not in answer.text
        answer = c.get("/metrics", headers={"Authorization": f"Bearer {TOKEN}"})
        assert answer.status_code == 200
        assert answer.headers["content-type"].startswith("text/plain")
        body = answer.text
        assert 'pbxfw_failures_total{event="invalid_user",jail="ssh",node="pbx1"} 7.0' in body
        assert 'pbxfw_dropped_packets_total{jail="ssh",node="pbx1",reason="jail"} 5.0' in body
        assert 'pbxfw_dropped_bytes_total{jail="",node="pbx1",reason="default_deny"} 120.0' in body
        assert "# TYPE pbxfw_agent_up gauge" in body
        # Not a page: no session, no login redirect.
        assert c.get("/metrics", follow_redirects=False).status_code == 401


def test_without_a_token_file_metrics_are_closed(home: Home, servers: list[Server]) -> None:  # noqa: F811
    server = start(home, servers)
    answer = httpx.get(
        server.url + "/metrics", headers={"Authorization": "Bearer anything"}, timeout=10
    )
    assert answer.status_code == 401
    assert "no metrics token is configured" in answer.text


def test_an_unusable_token_file_stops_serve_naming_the_option(home: Home, tmp_path: Path) -> None:  # noqa: F811
    short = tmp_path / "short"
    short.write_text("abc\n")
    for path in (str(tmp_path / "missing"), str(short)):
        done = pbxfw(
            "serve",
            "--port",
            "1",
            "--db",
            home.db,
            "--state-dir",
            str(home.state),
            "--metrics-token-file",
            path,
        )
        assert done.returncode == 2, done.stderr
        assert "--metrics-token-file" in done.stderr
