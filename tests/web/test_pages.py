"""The admin page without a browser: sessions, cookies, CSRF, redirects, escaping.

The browser tests drive the page as a person does; these check what a
browser does not show: cookie flags, refused forged posts, headers.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from pbxfw.domain.sources import SourceStatus
from pbxfw.storage.repository import Store
from pbxfw.storage.source_status import save_source_statuses
from pbxfw.usecases import ConfigService, NetworkChange
from pbxfw.usecases.bans import BanService
from pbxfw.web.app import create_app
from tests.web.conftest import ADMIN, CLIENT, PASSWORD, TestClient
from tests.web.fakes import FakeApplier

CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')


def csrf_of(html: str) -> str:
    match = CSRF.search(html)
    assert match, "no CSRF token in the page"
    return match.group(1)


def log_in(client: TestClient) -> str:
    """Log in through the form; returns the CSRF token of the new session."""
    token = csrf_of(client.get("/login").text)
    answer = client.post(
        "/login", data={"username": ADMIN, "password": PASSWORD, "csrf_token": token}
    )
    # The dashboard is the first page after login (issue 19).
    assert answer.status_code == 200 and answer.url.path == "/dashboard"
    return csrf_of(answer.text)


def test_pages_send_an_anonymous_visitor_to_the_login(client: TestClient) -> None:
    for path in (
        "/",
        "/dashboard",
        "/firewall",
        "/networks/new",
        "/apply",
        "/check",
        "/bans",
        "/ips",
        "/services",
    ):
        answer = client.get(path, follow_redirects=False)
        assert answer.status_code == 303, path
        assert answer.headers["location"].startswith("/login?next=")


def test_the_session_cookie_is_httponly_and_samesite_strict(client: TestClient) -> None:
    answer = client.get("/login")
    cookie = answer.headers["set-cookie"]
    assert cookie.startswith("pbxfw_session=")
    assert "HttpOnly" in cookie and "SameSite=strict" in cookie and "Path=/" in cookie
    assert "Secure" not in cookie  # plain http on localhost; https sets it (docs/web.md)


def test_logging_in_changes_the_session_and_csrf_token(client: TestClient) -> None:
    before_cookie = client.get("/login").cookies.get("pbxfw_session")
    before = csrf_of(client.get("/login").text)
    after = log_in(client)
    assert after != before
    assert client.cookies.get("pbxfw_session") != before_cookie


def test_a_failed_login_is_recorded_for_the_web_jail(client: TestClient, web_log: Path) -> None:
    token = csrf_of(client.get("/login").text)
    answer = client.post(
        "/login", data={"username": "root", "password": "123456", "csrf_token": token}
    )
    assert answer.status_code == 401
    assert "Wrong user name or password." in answer.text
    line = web_log.read_text()
    assert re.fullmatch(
        r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\+00:00 pbxfw-web: login failed from "
        + re.escape(CLIENT[0])
        + ' for user "root"\n',
        line,
    )


def test_a_login_without_the_csrf_token_is_refused(client: TestClient) -> None:
    client.get("/login")
    answer = client.post("/login", data={"username": ADMIN, "password": PASSWORD})
    assert answer.status_code == 403


@pytest.mark.parametrize("token", [None, "", "forged"])
def test_form_posts_without_the_sessions_csrf_token_are_refused_and_change_nothing(
    client: TestClient, store: Store, token: str | None
) -> None:
    log_in(client)
    data = {"name": "Forged", "address": "10.66.0.0", "prefix": "16"}
    if token is not None:
        data["csrf_token"] = token
    before = len(ConfigService(store).networks())
    for path, form in [
        ("/networks/new", data),
        (
            "/firewall/switches",
            {"firewall_enabled": "on", **({"csrf_token": token} if token is not None else {})},
        ),
    ]:
        answer = client.post(path, data=form)
        assert answer.status_code == 403, path
        assert "This form has expired" in answer.text
    assert len(ConfigService(store).networks()) == before
    assert ConfigService(store).settings().firewall_enabled is False


def test_the_csrf_token_of_another_session_is_refused(
    app: object, client: TestClient, store: Store
) -> None:
    token = log_in(client)
    with TestClient(client.app, client=CLIENT) as other:  # type: ignore[arg-type]
        log_in(other)
        answer = other.post(
            "/firewall/switches", data={"firewall_enabled": "on", "csrf_token": token}
        )
        assert answer.status_code == 403


def test_logging_out_ends_the_session_even_for_a_copied_cookie(client: TestClient) -> None:
    token = log_in(client)
    cookie = client.cookies.get("pbxfw_session")
    answer = client.post("/logout", data={"csrf_token": token})
    assert answer.url.path == "/login"
    client.cookies.set("pbxfw_session", cookie)
    assert client.get("/firewall", follow_redirects=False).status_code == 303


def test_next_after_login_never_leaves_the_site(client: TestClient) -> None:
    token = csrf_of(client.get("/login").text)
    answer = client.post(
        "/login",
        data={
            "username": ADMIN,
            "password": PASSWORD,
            "csrf_token": token,
            "next": "//evil.example/",
        },
        follow_redirects=False,
    )
    assert answer.headers["location"] == "/dashboard"


def test_pages_send_protective_headers(client: TestClient) -> None:
    answer = client.get("/login")
    assert "default-src 'self'" in answer.headers["content-security-policy"]
    assert "frame-ancestors 'none'" in answer.headers["content-security-policy"]
    assert answer.headers["x-frame-options"] == "DENY"
    assert answer.headers["x-content-type-options"] == "nosniff"
    assert answer.headers["cache-control"] == "no-store"
    assert client.get("/static/pbxfw.css").status_code == 200


def test_names_are_escaped(client: TestClient, store: Store) -> None:
    ConfigService(store).add_network(
        NetworkChange(name="<script>alert(1)</script>", subnet="10.7.0.0/16")
    )
    log_in(client)
    html = client.get("/firewall").text
    assert "<script>alert(1)</script>" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html


def test_the_networks_table(client: TestClient, store: Store) -> None:
    ConfigService(store).add_network(
        NetworkChange(
            name="Office", subnet="192.168.1.0/24", allow=["ssh"], local=True, never_block=True
        )
    )
    log_in(client)
    html = client.get("/firewall").text
    table = html.split("<table", 1)[1].split("</table>", 1)[0]
    assert table.count('class="verdict verdict-allow"') == 2 + 2 + 3  # sip+icmp twice, office +ssh
    assert "SSH: allowed" in html and "IAX2: blocked" in html
    assert "Local / VPN" in html and "Never block" in html
    # The permanent networks have no delete button; Office has one.
    assert len(re.findall(r'action="/networks/\d+/delete"', html)) == 1


def test_a_permanent_network_is_not_deleted_by_a_forged_post(
    client: TestClient, store: Store
) -> None:
    token = log_in(client)
    internet = ConfigService(store).network("Internet")
    answer = client.post(f"/networks/{internet.id}/delete", data={"csrf_token": token})
    assert "is permanent and cannot be removed" in answer.text
    assert ConfigService(store).network("Internet").permanent


def test_editing_a_permanent_network_keeps_its_subnet(client: TestClient, store: Store) -> None:
    token = log_in(client)
    internet = ConfigService(store).network("Internet")
    assert internet.id is not None
    form = client.get(f"/networks/{internet.id}/edit").text
    assert "readonly" in form and "A permanent network keeps its subnet" in form
    answer = client.post(
        f"/networks/{internet.id}/edit",
        data={
            "csrf_token": token,
            "name": "Internet",
            "address": "10.0.0.0",
            "prefix": "8",
            "service_sip": "allow",
            "service_ssh": "allow",
        },
    )
    assert answer.url.path == "/firewall"
    stored = ConfigService(store).network(internet.id)
    assert str(stored.subnet) == "0.0.0.0/0" and stored.services["ssh"] == "allow"
    assert stored.services["icmp"] == "block"  # the form says every service


def test_an_unknown_network_is_a_404_page(client: TestClient) -> None:
    log_in(client)
    answer = client.get("/networks/9999/edit")
    assert answer.status_code == 404 and "Not found" in answer.text
    assert client.get("/networks/abc/edit").status_code == 404


def test_host_bits_are_zeroed_with_a_note(client: TestClient, store: Store) -> None:
    token = log_in(client)
    answer = client.post(
        "/networks/new",
        data={"csrf_token": token, "name": "LAN", "address": "192.168.5.77/24", "prefix": "32"},
    )
    assert "192.168.5.77/24 has host bits set; stored as 192.168.5.0/24" in answer.text
    assert str(ConfigService(store).network("LAN").subnet) == "192.168.5.0/24"


def test_an_ipv4_address_with_an_ipv6_mask_is_refused_next_to_the_address(
    client: TestClient,
) -> None:
    token = log_in(client)
    answer = client.post(
        "/networks/new",
        data={"csrf_token": token, "name": "X", "address": "10.0.0.0", "prefix": "64"},
    )
    assert answer.status_code == 422
    assert 'id="address-error"' in answer.text and "0–32" in answer.text


def test_never_block_marks_an_existing_network(client: TestClient, store: Store) -> None:
    ConfigService(store).add_network(NetworkChange(name="Phone", subnet="198.51.100.9/32"))
    BanService(store).add("198.51.100.9", jail="asterisk")
    token = log_in(client)
    client.post("/bans/never-block", data={"csrf_token": token, "subnet": "198.51.100.9/32"})
    assert ConfigService(store).network("Phone").never_block
    assert BanService(store).active() == []


def test_never_block_adds_a_network_for_an_address_outside_any(
    client: TestClient, store: Store
) -> None:
    """The page's button calls the use case of `pbxfw bans trust` (issue 14)."""
    BanService(store).add("198.51.100.9", jail="asterisk")
    token = log_in(client)
    client.post("/bans/never-block", data={"csrf_token": token, "subnet": "198.51.100.9/32"})
    network = ConfigService(store).network("Never block 198.51.100.9")
    assert network.never_block and str(network.subnet) == "198.51.100.9/32"
    assert BanService(store).active() == []


def test_ban_from_the_page_and_refusal_named(client: TestClient, store: Store) -> None:
    token = log_in(client)
    answer = client.post("/bans/add", data={"csrf_token": token, "address": "not an address"})
    assert answer.status_code == 422 and 'id="address-error"' in answer.text
    client.post("/bans/add", data={"csrf_token": token, "address": "203.0.113.99"})
    assert [b.address_text() for b in BanService(store).active()] == ["203.0.113.99"]


def test_an_apply_that_would_lock_the_admin_out_is_explained(
    client: TestClient, applier: FakeApplier
) -> None:
    token = log_in(client)
    applier.lockout = CLIENT[0]
    answer = client.post(
        "/apply", data={"csrf_token": token, "confirm": "on", "confirm_seconds": "60"}
    )
    assert answer.status_code == 409
    assert f"Not applied: the new rules would block your own address {CLIENT[0]}" in answer.text


def test_the_apply_status_for_the_countdown(client: TestClient, applier: FakeApplier) -> None:
    assert client.get("/apply/status").status_code == 401
    token = log_in(client)
    assert client.get("/apply/status").json()["pending"] is None
    client.post("/apply", data={"csrf_token": token, "confirm": "on", "confirm_seconds": "30"})
    state = client.get("/apply/status").json()
    assert state["pending"]["deadline"] == pytest.approx(state["now"] + 30, abs=2)
    assert "A change is waiting for confirmation" in client.get("/firewall").text


def test_without_a_dataplane_the_apply_page_says_so(store: Store, web_log: Path) -> None:
    with TestClient(create_app(store, web_log=web_log), client=CLIENT) as client:
        token = log_in(client)
        assert "Applying is not available" in client.get("/apply").text
        answer = client.post("/apply", data={"csrf_token": token, "confirm": "on"})
        assert "Applying is not available on this server." in answer.text


def test_settings_forms_show_errors_by_field(client: TestClient, store: Store) -> None:
    token = log_in(client)
    answer = client.post(
        "/ips",
        data={
            "csrf_token": token,
            "ips_preset": "custom",
            "ips_maxretry": "0",
            "ips_findtime": "1h",
            "ips_bantime": "1d",
            "ips_bantime_max": "30d",
            "ips_whitelist": "",
            "sip_rate_limit": "0",
            "log_asterisk_security": "/a",
            "log_asterisk_messages": "/b",
            "log_ssh": "/c",
            "log_web": "/d",
        },
    )
    assert answer.status_code == 422 and 'id="ips_maxretry-error"' in answer.text
    assert ConfigService(store).settings().log_ssh == "/var/log/auth.log"
    answer = client.post(
        "/services/custom", data={"csrf_token": token, "key": "Bad Key", "tcp": "80"}
    )
    assert answer.status_code == 422 and 'id="custom_key-error"' in answer.text


def test_the_ips_page_names_a_failing_source_and_why(client: TestClient, store: Store) -> None:
    """Issue 13 item 5: what the agent recorded in source_status is on the page,
    with a banner when a source fails; values are escaped like any other."""
    log_in(client)
    assert "Nothing recorded yet" in client.get("/ips").text
    with store.write() as repo:
        save_source_statuses(
            repo,
            [
                SourceStatus("/var/log/asterisk/messages", "asterisk", "", 100.0, 0, 100.0),
                SourceStatus("/tmp/<b>x", "ssh", "is a folder, not a file", 200.0, 3, 207.0),
            ],
        )
    page = client.get("/ips").text
    assert 'id="sources-failing"' in page and "cannot read or run 1 of its sources" in page
    assert "<code>/tmp/&lt;b&gt;x</code> (ssh): is a folder, not a file" in page
    assert "/var/log/asterisk/messages" in page and ">reading<" in page and ">failing<" in page
    with store.write() as repo:
        save_source_statuses(repo, [SourceStatus("/tmp/<b>x", "ssh", "", 300.0, 0, 300.0)])
    assert 'id="sources-failing"' not in client.get("/ips").text


def test_the_ips_page_names_each_pbx_when_several_report(client: TestClient, store: Store) -> None:
    """Each node's agent records its own sources and counters (migration 0009):
    with more than one, every source row names its PBX and the counters are
    summed over them; with one, the page is as before."""
    log_in(client)
    with store.write() as repo:
        repo.add_ips_counters("ssh", node="pbx-a", lines=3)
        save_source_statuses(
            repo, [SourceStatus("/var/log/auth.log", "ssh", "", 1.0, 0, 1.0, "pbx-a")]
        )
    page = client.get("/ips").text
    assert 'data-label="PBX"' not in page and "Summed over every PBX" not in page
    with store.write() as repo:
        repo.add_ips_counters("ssh", node="pbx-b", lines=4)
        save_source_statuses(
            repo, [SourceStatus("/var/log/auth.log", "ssh", "gone", 1.0, 1, 2.0, "pbx-b")]
        )
    page = client.get("/ips").text
    assert '<td data-label="PBX">pbx-a</td>' in page and '<td data-label="PBX">pbx-b</td>' in page
    assert '<td data-label="Lines read">7</td>' in page and "Summed over every PBX" in page
    assert "pbx-b: <code>/var/log/auth.log</code> (ssh): gone" in page
