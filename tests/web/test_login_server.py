"""Logouts and the login throttle against real ``pbxfw serve`` processes (issue 13, items 7, 8).

Everything goes through the real CLI (``pbxfw init``, ``user add``,
``user logout``, ``serve``) and real HTTP on 127.0.0.1; a second client
address is 127.0.0.2 (the whole of 127.0.0.0/8 is loopback). A "restart" is
a new ``pbxfw serve`` process on the same database and state folder.
Passwords are hashed at argon2's full cost here, as in production.
"""

from __future__ import annotations

import re
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

PBXFW = str(Path(sys.executable).with_name("pbxfw"))
ADMIN, PASSWORD = "admin", "a long enough password"
CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')


@dataclass
class Home:
    #: the database URL (a SQLite file, or PostgreSQL: tests/conftest.py)
    db: str
    state: Path
    web_log: Path
    folder: Path


def pbxfw(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [PBXFW, *args], input=stdin, capture_output=True, text=True, timeout=60, check=False
    )


@pytest.fixture
def home(tmp_path: Path, db_url: str) -> Home:
    found = Home(db_url, tmp_path / "state", tmp_path / "web.log", tmp_path)
    assert pbxfw("init", "--db", found.db).returncode == 0
    added = pbxfw("user", "add", ADMIN, "--password-stdin", "--db", found.db, stdin=PASSWORD)
    assert added.returncode == 0, added.stderr
    return found


class Server:
    """One ``pbxfw serve`` process on a free port of 127.0.0.1."""

    def __init__(self, home: Home) -> None:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = int(s.getsockname()[1])
        self.url = f"http://127.0.0.1:{self.port}"
        argv = [PBXFW, "serve", "--port", str(self.port), "--db", home.db]
        argv += ["--state-dir", str(home.state), "--web-log", str(home.web_log)]
        self.output = (home.folder / f"serve-{self.port}.log").open("wb")
        self.proc = subprocess.Popen(argv, stdout=self.output, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 30
        while True:
            try:
                httpx.get(self.url + "/login", timeout=1)
                return
            except httpx.HTTPError:
                if self.proc.poll() is not None or time.monotonic() > deadline:
                    self.stop()
                    output = Path(self.output.name).read_text(errors="replace")
                    raise AssertionError(f"pbxfw serve did not come up:\n{output}") from None
                time.sleep(0.1)

    def client(self, source: str = "127.0.0.1") -> httpx.Client:
        transport = httpx.HTTPTransport(local_address=source)
        return httpx.Client(base_url=self.url, transport=transport, timeout=30)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        self.output.close()


@pytest.fixture
def servers(home: Home) -> Iterator[list[Server]]:
    """Started servers, all stopped at the end (also when a test fails)."""
    started: list[Server] = []
    yield started
    for server in started:
        server.stop()


def start(home: Home, servers: list[Server]) -> Server:
    server = Server(home)
    servers.append(server)
    return server


def log_in(client: httpx.Client, password: str = PASSWORD) -> httpx.Response:
    csrf = CSRF.search(client.get("/login").text)
    assert csrf
    return client.post(
        "/login", data={"username": ADMIN, "password": password, "csrf_token": csrf.group(1)}
    )


def get_token(client: httpx.Client, password: str = PASSWORD) -> httpx.Response:
    return client.post("/api/v1/auth/token", data={"username": ADMIN, "password": password})


def bearer(client: httpx.Client) -> dict[str, str]:
    answer = get_token(client)
    assert answer.status_code == 200, answer.text
    return {"Authorization": f"Bearer {answer.json()['access_token']}"}


def logged_in(server: Server, cookie: str) -> bool:
    """Does this session cookie, copied into a fresh client, open the page?"""
    with server.client() as copy:
        copy.cookies.set("pbxfw_session", cookie)
        return copy.get("/firewall").status_code == 200


def test_a_logged_out_session_and_token_stay_ended_after_a_restart(
    home: Home, servers: list[Server]
) -> None:
    first = start(home, servers)
    with first.client() as c:
        assert log_in(c).status_code == 303
        cookie = c.cookies["pbxfw_session"]
        assert logged_in(first, cookie)
        kept = bearer(c)
        ended = bearer(c)
        assert c.post("/api/v1/auth/logout", headers=ended).status_code == 204
        csrf = CSRF.search(c.get("/firewall").text)
        assert csrf
        assert c.post("/logout", data={"csrf_token": csrf.group(1)}).status_code == 303
        assert not logged_in(first, cookie)
    first.stop()

    restarted = start(home, servers)  # same database, same state folder (same key)
    with restarted.client() as c:
        assert not logged_in(restarted, cookie)
        assert c.get("/api/v1/networks", headers=ended).status_code == 401
        # What was not logged out survives the restart: the key is kept.
        assert c.get("/api/v1/networks", headers=kept).status_code == 200
        assert log_in(c).status_code == 303


def test_cli_user_logout_ends_a_live_session_and_a_live_token(
    home: Home, servers: list[Server]
) -> None:
    server = start(home, servers)
    with server.client() as c:
        assert log_in(c).status_code == 303
        cookie = c.cookies["pbxfw_session"]
        headers = bearer(c)
        assert logged_in(server, cookie)
        assert c.get("/api/v1/networks", headers=headers).status_code == 200
        result = pbxfw("user", "logout", ADMIN, "--db", home.db)
        assert result.returncode == 0, result.stderr
        assert not logged_in(server, cookie)
        assert c.get("/api/v1/networks", headers=headers).status_code == 401
        assert c.get("/api/v1/networks", headers=bearer(c)).status_code == 200  # log in again


def test_the_sixth_bad_password_is_refused_on_both_routes_but_not_from_another_address(
    home: Home, servers: list[Server]
) -> None:
    server = start(home, servers)
    with server.client("127.0.0.1") as guesser, server.client("127.0.0.2") as admin:
        for _ in range(5):
            assert get_token(guesser, "wrong password").status_code == 401
        refused = get_token(guesser, "wrong password")
        assert refused.status_code == 429
        assert 1 <= int(refused.headers["retry-after"]) <= 30
        page = log_in(guesser, "wrong password")
        assert page.status_code == 429 and "retry-after" in page.headers
        assert "Too many failed logins from your address" in page.text
        # The right password from the locked address is refused too ...
        assert get_token(guesser).status_code == 429
        # ... but works from another address (after a short delay on the account).
        assert get_token(admin).status_code == 200
        assert log_in(admin).status_code == 303
    lines = home.web_log.read_text().splitlines()
    assert len(lines) == 5 and all("login failed from 127.0.0.1" in line for line in lines)


def test_two_servers_on_one_database_share_the_throttle(home: Home, servers: list[Server]) -> None:
    one, two = start(home, servers), start(home, servers)
    with one.client() as a, two.client() as b:
        for client in (a, b, a, b, a):
            assert get_token(client, "wrong").status_code == 401
        assert get_token(b, "wrong").status_code == 429
