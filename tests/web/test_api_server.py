"""The REST API of real ``pbxfw serve`` processes, on both engines (tests/conftest.py).

``pbxfw init``, ``user add`` and ``serve`` are the real commands; two servers
on one database stand for two web workers (or, on PostgreSQL, two hosts):
what one stores the other serves at once, a NUL in a ban's reason is stored
and given back, and a name or subnet taken through one is refused by the other.
"""

from __future__ import annotations

import httpx

from tests.web.test_login_server import (  # noqa: F401 - home and servers are fixtures
    Home,
    Server,
    bearer,
    home,
    pbxfw,
    servers,
    start,
)

API = "/api/v1"


def test_two_servers_on_one_database_serve_what_either_stored(
    home: Home,  # noqa: F811
    servers: list[Server],  # noqa: F811
) -> None:
    one, two = start(home, servers), start(home, servers)
    with one.client() as a, two.client() as b:
        auth_a, auth_b = bearer(a), bearer(b)
        made = a.post(
            f"{API}/networks",
            headers=auth_a,
            json={"name": "Office", "subnet": "10.1.0.0/16", "allow": ["ssh"]},
        )
        assert made.status_code == 201, made.text
        office = made.json()
        assert b.get(f"{API}/networks/{office['id']}", headers=auth_b).json() == office
        taken = b.post(
            f"{API}/networks", headers=auth_b, json={"name": "Office", "subnet": "10.2.0.0/16"}
        )
        assert taken.status_code == 409, taken.text

        banned = b.post(
            f"{API}/bans",
            headers=auth_b,
            json={"address": "198.51.100.0/24", "seconds": 600, "reason": "scan\x00ner"},
        )
        assert banned.status_code == 201, banned.text
        listed = a.get(f"{API}/bans", headers=auth_a).json()
        assert [(x["address"], x["reason"]) for x in listed] == [("198.51.100.0/24", "scan\x00ner")]
        assert a.delete(f"{API}/bans/198.51.100.0%2F24", headers=auth_a).status_code == 204
        assert b.get(f"{API}/bans", headers=auth_b).json() == []

    # The CLI on the same database sees the same.
    shown = pbxfw("network", "show", "Office", "--json", "--db", home.db)
    assert shown.returncode == 0 and '"10.1.0.0/16"' in shown.stdout


def test_a_request_with_a_huge_network_id_is_a_404_not_a_database_error(
    home: Home,  # noqa: F811
    servers: list[Server],  # noqa: F811
) -> None:
    server = start(home, servers)
    with server.client() as c:
        auth = bearer(c)
        for ref in ("2147483648", "9223372036854775807", "99999999999999999999"):
            answer: httpx.Response = c.get(f"{API}/networks/{ref}", headers=auth)
            assert answer.status_code == 404, (ref, answer.text)
