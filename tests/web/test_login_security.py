"""Logouts that last and a login throttle, through the application (issue 13, items 7 and 8).

Each "restart" or "second worker" is a new application instance from
``create_app`` on the same database, as ``pbxfw serve`` makes after a
restart; test_login_server.py does the same with real ``pbxfw serve``
processes. The clock and the throttle's sleep are injected, so no test waits.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi import FastAPI
from sqlalchemy import text

from pbxfw.storage.repository import Store
from pbxfw.usecases.users import LoginThrottle
from pbxfw.web.app import create_app
from tests.web.conftest import ADMIN, CLIENT, PASSWORD, TestClient
from tests.web.test_pages import csrf_of, log_in

API = "/api/v1"
SECRET = b"k" * 32
T0 = 1_800_000_000.0
OTHER = ("203.0.113.77", 40000)


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> float:
        return self.now


class Sleeps:
    """The throttle's waits, recorded instead of slept."""

    def __init__(self) -> None:
        self.calls: list[float] = []

    async def __call__(self, seconds: float) -> None:
        self.calls.append(seconds)


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def sleeps() -> Sleeps:
    return Sleeps()


@pytest.fixture
def make_app(store: Store, web_log: Path, clock: Clock, sleeps: Sleeps) -> Callable[..., FastAPI]:
    """A new application instance on the test's database (a restart, or another worker)."""

    def make(**options: Any) -> FastAPI:
        return create_app(
            store,
            secret_key=SECRET,
            web_log=web_log,
            **{"clock": clock, "sleep": sleeps, **options},
        )

    return make


@pytest.fixture
def api(make_app: Callable[..., FastAPI]) -> Iterator[TestClient]:
    with TestClient(make_app(), client=CLIENT) as client:
        yield client


def token(client: TestClient, password: str = PASSWORD, user: str = ADMIN) -> Any:
    return client.post(f"{API}/auth/token", data={"username": user, "password": password})


def bearer(client: TestClient) -> dict[str, str]:
    answer = token(client)
    assert answer.status_code == 200, answer.text
    return {"Authorization": f"Bearer {answer.json()['access_token']}"}


def form_login(client: TestClient, password: str, user: str = ADMIN) -> Any:
    csrf = csrf_of(client.get("/login").text)
    return client.post(
        "/login",
        data={"username": user, "password": password, "csrf_token": csrf},
        follow_redirects=False,
    )


# -- item 7: logouts survive restarts and reach every worker ---------------------------


def test_a_logged_out_cookie_stays_refused_after_a_restart(
    make_app: Callable[..., FastAPI], clock: Clock
) -> None:
    with TestClient(make_app(), client=CLIENT) as first:
        csrf = log_in(first)
        cookie = first.cookies.get("pbxfw_session")
        assert first.post("/logout", data={"csrf_token": csrf}).url.path == "/login"
    clock.now += 60
    with TestClient(make_app(), client=CLIENT) as restarted:  # same key, same database
        restarted.cookies.set("pbxfw_session", cookie)
        answer = restarted.get("/firewall", follow_redirects=False)
        assert answer.status_code == 303 and answer.headers["location"].startswith("/login")
        # The same key still accepts a session that was not logged out.
        log_in(restarted)
        assert restarted.get("/firewall").url.path == "/firewall"


def test_a_logout_on_one_worker_is_refused_by_another(make_app: Callable[..., FastAPI]) -> None:
    with (
        TestClient(make_app(), client=CLIENT) as one,
        TestClient(make_app(), client=CLIENT) as two,
    ):
        csrf = log_in(one)
        two.cookies.set("pbxfw_session", one.cookies.get("pbxfw_session"))
        assert two.get("/firewall").url.path == "/firewall"
        one.post("/logout", data={"csrf_token": csrf})
        assert two.get("/firewall", follow_redirects=False).status_code == 303


def test_revoked_ids_are_pruned_once_their_cookie_would_have_expired(
    make_app: Callable[..., FastAPI], store: Store, clock: Clock
) -> None:
    with TestClient(make_app(session_ttl=600), client=CLIENT) as client:
        for _ in range(3):
            csrf = log_in(client)
            client.post("/logout", data={"csrf_token": csrf})
        assert _revoked_rows(store) == 3
        clock.now += 601
        csrf = log_in(client)
        client.post("/logout", data={"csrf_token": csrf})
        assert _revoked_rows(store) == 1  # the three expired ones were dropped


def _revoked_rows(store: Store) -> int:
    from sqlalchemy import func, select

    from pbxfw.storage.models import RevokedSessionRow

    with store.read() as repo:
        return int(repo.session.scalar(select(func.count()).select_from(RevokedSessionRow)) or 0)


def test_tokens_carry_their_issue_time_and_id(api: TestClient, clock: Clock) -> None:
    from pbxfw.web.security import API_TOKEN, Signer

    access = token(api).json()["access_token"]
    claims = Signer(SECRET, clock).unsign(API_TOKEN, access)
    assert claims is not None
    assert claims["iat"] == T0 and claims["sub"] == ADMIN
    assert isinstance(claims["jti"], str) and len(claims["jti"]) >= 16


def test_rest_logout_ends_that_token_only(api: TestClient) -> None:
    mine, other = bearer(api), bearer(api)
    answer = api.post(f"{API}/auth/logout", headers=mine)
    assert answer.status_code == 204
    assert api.get(f"{API}/networks", headers=mine).status_code == 401
    assert api.post(f"{API}/auth/logout", headers=mine).status_code == 401
    assert api.get(f"{API}/networks", headers=other).status_code == 200


def test_rest_logout_everywhere_ends_every_token_and_session_of_the_user(
    api: TestClient, clock: Clock
) -> None:
    mine, other = bearer(api), bearer(api)
    log_in(api)
    answer = api.post(f"{API}/auth/logout", headers=mine, json={"everywhere": True})
    assert answer.status_code == 204
    assert api.get(f"{API}/networks", headers=other).status_code == 401
    assert api.get("/firewall", follow_redirects=False).status_code == 303
    clock.now += 1
    assert api.get(f"{API}/networks", headers=bearer(api)).status_code == 200  # a new login works


@pytest.mark.parametrize("body", [{"everywhere": "yes"}, {"everywhere": 1}, {"all": True}])
def test_rest_logout_has_a_strict_body(api: TestClient, body: dict[str, Any]) -> None:
    headers = bearer(api)
    answer = api.post(f"{API}/auth/logout", headers=headers, json=body)
    assert answer.status_code == 422
    assert api.get(f"{API}/networks", headers=headers).status_code == 200  # nothing was done


def test_the_page_logs_out_everywhere_when_asked(api: TestClient) -> None:
    headers = bearer(api)
    csrf = log_in(api)
    answer = api.post("/logout", data={"csrf_token": csrf, "everywhere": "1"})
    assert answer.url.path == "/login"
    assert "logged out everywhere" in answer.text
    assert api.get(f"{API}/networks", headers=headers).status_code == 401


def test_cli_user_logout_ends_a_live_session_and_a_live_token(
    store: Store, web_log: Path, cli: Any
) -> None:
    # The real clock: the CLI's cutoff is the wall-clock time.
    with TestClient(create_app(store, secret_key=SECRET, web_log=web_log), client=CLIENT) as c:
        headers = bearer(c)
        log_in(c)
        assert c.get(f"{API}/networks", headers=headers).status_code == 200
        result = cli("user", "logout", ADMIN)
        assert result.exit_code == 0, result.stderr
        assert f"logged out user {ADMIN} everywhere" in result.stdout
        assert c.get(f"{API}/networks", headers=headers).status_code == 401
        assert c.get("/firewall", follow_redirects=False).status_code == 303
        # The administrator can log in again at once.
        assert c.get(f"{API}/networks", headers=bearer(c)).status_code == 200


def test_a_new_password_ends_the_sessions_and_tokens_of_the_old_one(
    store: Store, web_log: Path, cli: Any
) -> None:
    # Whoever knew the old password is out as soon as it is replaced.
    new_password = "another-long-password"
    with TestClient(create_app(store, secret_key=SECRET, web_log=web_log), client=CLIENT) as c:
        headers = bearer(c)
        log_in(c)
        result = cli("user", "add", ADMIN, "--password-stdin", input=new_password + "\n")
        assert result.exit_code == 0, result.stderr
        assert c.get(f"{API}/networks", headers=headers).status_code == 401
        assert c.get("/firewall", follow_redirects=False).status_code == 303
        assert token(c).status_code == 401  # the old password
        fresh = token(c, password=new_password)
        assert fresh.status_code == 200
        headers = {"Authorization": f"Bearer {fresh.json()['access_token']}"}
        assert c.get(f"{API}/networks", headers=headers).status_code == 200


def test_cli_user_logout_of_an_unknown_user_says_so(store: Store, cli: Any) -> None:
    result = cli("user", "logout", "nobody")
    assert result.exit_code == 3
    assert "no user 'nobody'" in result.stderr


def test_a_token_of_a_user_who_no_longer_exists_is_refused(api: TestClient, store: Store) -> None:
    from sqlalchemy import delete

    from pbxfw.storage.models import UserRow

    headers = bearer(api)
    with store.write() as repo:
        repo.session.execute(delete(UserRow).where(UserRow.name == ADMIN))
    assert api.get(f"{API}/networks", headers=headers).status_code == 401


# -- item 8: the login throttle -------------------------------------------------------------


def test_the_sixth_bad_password_in_a_minute_answers_429_on_the_token_route(
    api: TestClient, clock: Clock, web_log: Path
) -> None:
    for i in range(5):
        clock.now = T0 + i * 10
        assert token(api, "wrong password").status_code == 401
    clock.now = T0 + 50
    answer = token(api, "wrong password")
    assert answer.status_code == 429
    assert answer.headers["retry-after"] == "20"  # 30 s from the 5th failure, 10 s ago
    assert "too many failed logins" in answer.json()["detail"]
    # While locked, the password is not even checked: the right one is refused too.
    assert token(api).status_code == 429
    # The five failures reached the web jail; the refused attempts checked no password.
    assert web_log.read_text().count("login failed from 198.51.100.20") == 5


def test_the_sixth_bad_password_in_a_minute_answers_429_on_the_login_form(
    api: TestClient, clock: Clock
) -> None:
    for _ in range(5):
        assert form_login(api, "wrong password").status_code == 401
        clock.now += 5
    answer = form_login(api, "wrong password")
    assert answer.status_code == 429
    assert answer.headers["retry-after"] == "25"  # 30 s from the 5th failure, 5 s ago
    assert "Too many failed logins from your address. Try again in 25 seconds." in answer.text
    assert 'role="alert"' in answer.text


def test_the_token_route_and_the_form_share_one_count(api: TestClient) -> None:
    for _ in range(3):
        assert token(api, "wrong").status_code == 401
    for _ in range(2):
        assert form_login(api, "wrong").status_code == 401
    assert token(api, "wrong").status_code == 429


def test_the_lock_grows_with_each_failure_after_it(api: TestClient, clock: Clock) -> None:
    waits = []
    for _ in range(4):
        assert token(api, "wrong").status_code == 401
    for _ in range(4):
        assert token(api, "wrong").status_code == 401  # locks the address
        refused = token(api, "wrong")
        assert refused.status_code == 429
        waits.append(int(refused.headers["retry-after"]))
        clock.now += waits[-1]
    assert waits == [30, 60, 120, 240]
    # After the last lock, the right password works and resets the address.
    assert token(api).status_code == 200
    for _ in range(4):
        assert token(api, "wrong").status_code == 401


def test_a_correct_password_from_another_address_still_works(
    make_app: Callable[..., FastAPI], sleeps: Sleeps, clock: Clock
) -> None:
    app = make_app()
    with (
        TestClient(app, client=CLIENT) as guesser,
        TestClient(app, client=OTHER) as admin,
    ):
        for _ in range(6):
            token(guesser, "wrong")
        assert token(guesser).status_code == 429  # the right password, from the locked address
        assert sleeps.calls == []  # the first five failures were not slowed
        answer = token(admin)
        assert answer.status_code == 200
        # The account under attack is only delayed, never locked: 1 s here.
        assert sleeps.calls == [1.0]
        assert form_login(admin, PASSWORD).status_code == 303
        # ... and the guesser's address is still locked.
        assert token(guesser).status_code == 429


def test_a_guesser_spread_over_many_addresses_is_slowed_on_the_account(
    make_app: Callable[..., FastAPI], sleeps: Sleeps
) -> None:
    app = make_app()
    for i in range(8):
        with TestClient(app, client=(f"192.0.2.{i + 1}", 1000)) as c:
            assert token(c, "wrong").status_code == 401
    assert sleeps.calls == [1.0, 2.0, 4.0]  # attempts 6, 7, 8 on the account waited


def test_a_success_resets_the_address_but_not_the_account(
    make_app: Callable[..., FastAPI], store: Store, clock: Clock
) -> None:
    with TestClient(make_app(), client=CLIENT) as c:
        for _ in range(4):
            assert token(c, "wrong").status_code == 401
        assert token(c).status_code == 200
        keys = {r.key: r.failures for r in LoginThrottle(store, clock).records()}
        assert keys == {f"user:{ADMIN}": 4}
        for _ in range(4):
            assert token(c, "wrong").status_code == 401  # 4 more: not locked


def test_the_throttle_is_shared_by_two_app_instances_on_one_database(
    make_app: Callable[..., FastAPI],
) -> None:
    with (
        TestClient(make_app(), client=CLIENT) as one,
        TestClient(make_app(), client=CLIENT) as two,
    ):
        for client in (one, two, one, two, one):
            assert token(client, "wrong").status_code == 401
        assert token(two, "wrong").status_code == 429
        assert form_login(one, "wrong").status_code == 429


def test_unknown_user_names_are_counted_like_real_ones(api: TestClient) -> None:
    for i in range(5):
        assert token(api, "x", user=f"guess{i}").status_code == 401
    assert token(api, "x", user="guess9").status_code == 429


def test_the_throttle_forgets_old_records(
    make_app: Callable[..., FastAPI], store: Store, clock: Clock
) -> None:
    with TestClient(make_app(), client=CLIENT) as c:
        token(c, "wrong", user="someone")
        clock.now += 3 * 3600
        with TestClient(make_app(), client=OTHER) as other:
            token(other, "wrong", user="another")
    keys = {r.key for r in LoginThrottle(store, clock).records()}
    assert keys == {f"address:{OTHER[0]}", "user:another"}


def test_parallel_attempts_from_one_address_cannot_pass_the_threshold(
    store: Store, clock: Clock
) -> None:
    """``begin`` counts before the password is checked: ten attempts in flight
    at once get five password checks, not ten."""
    throttle = LoginThrottle(store, clock)
    admitted = [throttle.begin(ADMIN, CLIENT[0]) for _ in range(10)]
    assert sum(not a.refused for a in admitted) == 5
    assert all(a.retry_after == 30 for a in admitted[5:])


def test_switched_off_for_measuring_only(make_app: Callable[..., FastAPI]) -> None:
    with TestClient(make_app(login_throttle=False), client=CLIENT) as c:
        for _ in range(10):
            assert token(c, "wrong").status_code == 401


def test_a_database_that_is_away_answers_503_not_500(
    make_app: Callable[..., FastAPI], store: Store
) -> None:
    with TestClient(make_app(), client=CLIENT) as c:
        headers = bearer(c)
        with store.write() as repo:
            repo.session.execute(text("DROP TABLE revoked_sessions"))
        answer = c.get(f"{API}/networks", headers=headers)
        assert answer.status_code == 503
        assert "run `pbxfw init`" in answer.json()["detail"]


def test_a_token_signed_before_issue_times_lasts_until_a_logout_everywhere(
    api: TestClient, store: Store, clock: Clock
) -> None:
    import base64
    import hashlib
    import hmac
    import json

    from pbxfw.usecases.users import UserService

    def b64(data: bytes) -> str:
        return base64.urlsafe_b64encode(data).rstrip(b"=").decode()

    body = b64(json.dumps({"sub": ADMIN, "exp": int(T0 + 3600)}).encode())
    old = f"{body}.{b64(hmac.new(SECRET, f'api.{body}'.encode(), hashlib.sha256).digest())}"
    headers = {"Authorization": f"Bearer {old}"}
    assert api.get(f"{API}/networks", headers=headers).status_code == 200
    UserService(store, clock).logout_everywhere(ADMIN)
    assert api.get(f"{API}/networks", headers=headers).status_code == 401
