"""Password guessing against the web login, with and without the login throttle (issue 13).

Run: ``.venv/bin/python bench/bench_login.py [--seconds 15]`` (about 45 s).

Two real servers on 127.0.0.1 over one database: ``pbxfw serve`` (the
throttle on, as shipped) and, as the baseline of the same run, the same
application from ``create_app(..., login_throttle=False)`` under uvicorn
(the build with the throttle switched off; nothing else differs for a
login). Two guessers at once, one per route, each sequential like a simple
brute-force tool, send wrong passwords for ``--seconds`` and count:

- *guesses/s*: passwords the server actually checked (answers 401);
- *answers/s*: every answer, including 429 refusals (no password checked).

Each route is guessed from its own source address (127.0.0.2 for the token
route, 127.0.0.3 for the form) and against its own account, so the two do
not share a lock. Afterwards the real administrator logs in from a clean
address (127.0.0.4) on the account that the token guesser attacked: that
login must succeed, only delayed. The long-run figures (a guesser that
waits out every ``Retry-After``) follow from the rule's own functions
(pbxfw.domain.login_throttle), not from waiting an hour.
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx

from bench_web import free_port, wait_up

PBXFW = str(Path(sys.executable).with_name("pbxfw"))
PASSWORD = "the right password"
CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')
UNTHROTTLED_APP = """
import sys
from pathlib import Path
import uvicorn
from pbxfw.storage.db import database_url
from pbxfw.storage.repository import Store
from pbxfw.web.app import create_app
db, port, log = sys.argv[1], int(sys.argv[2]), sys.argv[3]
store = Store.open(database_url(db))
app = create_app(store, secret_key=b"b" * 32, web_log=Path(log), login_throttle=False)
uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning")
"""


def client(url: str, source: str) -> httpx.Client:
    return httpx.Client(
        base_url=url, transport=httpx.HTTPTransport(local_address=source), timeout=30
    )


def guess(url: str, route: str, user: str, source: str, seconds: float) -> dict[str, float]:
    """Wrong passwords for ``seconds``; counts answers by status."""
    counts: dict[int, int] = {}
    with client(url, source) as c:
        csrf = ""
        if route == "form":
            match = CSRF.search(c.get("/login").text)
            assert match, "no CSRF token on the login page"
            csrf = match.group(1)
        start = time.perf_counter()
        n = 0
        while time.perf_counter() - start < seconds:
            n += 1
            password = f"guess-{n}"
            if route == "token":
                answer = c.post("/api/v1/auth/token", data={"username": user, "password": password})
            else:
                answer = c.post(
                    "/login",
                    data={"username": user, "password": password, "csrf_token": csrf},
                    follow_redirects=False,
                )
            counts[answer.status_code] = counts.get(answer.status_code, 0) + 1
        elapsed = time.perf_counter() - start
    unexpected = set(counts) - {401, 429}
    assert not unexpected, f"unexpected answers {counts}"
    return {
        "guesses": counts.get(401, 0) / elapsed,
        "answers": sum(counts.values()) / elapsed,
        "checked": counts.get(401, 0),
        "refused": counts.get(429, 0),
    }


def admin_login(url: str, user: str) -> tuple[int, float]:
    with client(url, "127.0.0.4") as c:
        start = time.perf_counter()
        answer = c.post("/api/v1/auth/token", data={"username": user, "password": PASSWORD})
        return answer.status_code, time.perf_counter() - start


def long_run_guesses(hours: float) -> int:
    """Passwords one address can have checked in ``hours``, waiting out every lock."""
    from pbxfw.domain.login_throttle import FREE_FAILURES, address_lock

    t, n = 0.0, 0
    while True:
        n += 1  # a failure at time t
        t += address_lock(n) if n >= FREE_FAILURES else 0.0
        if t > hours * 3600:
            return n


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=float, default=15.0, help="guessing time per server")
    seconds = parser.parse_args().seconds

    tmp = Path(tempfile.mkdtemp(prefix="pbxfw-login-bench-"))
    db = str(tmp / "pbxfw.db")
    subprocess.run([PBXFW, "init", "--db", db], check=True, capture_output=True)
    for user in ("token-victim", "form-victim"):
        subprocess.run(
            [PBXFW, "user", "add", user, "--password-stdin", "--db", db],
            input=PASSWORD + "\n",
            text=True,
            check=True,
            capture_output=True,
        )
    port, base_port = free_port(), free_port()
    ours = subprocess.Popen(
        [PBXFW, "serve", "--port", str(port), "--db", db, "--web-log", str(tmp / "web.log")],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    baseline = subprocess.Popen(
        [sys.executable, "-c", UNTHROTTLED_APP, db, str(base_port), str(tmp / "web-off.log")],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    results: dict[tuple[str, str], dict[str, float]] = {}
    admin: dict[str, tuple[int, float]] = {}
    try:
        servers = {"off": f"http://127.0.0.1:{base_port}", "on": f"http://127.0.0.1:{port}"}
        for url in servers.values():
            wait_up(url + "/login")
        for mode, url in servers.items():
            # Each server starts from a clean throttle table for its own run.
            subprocess.run(
                [sys.executable, "-c", _CLEAR_THROTTLE, db], check=True, capture_output=True
            )
            with ThreadPoolExecutor(2) as pool:
                token = pool.submit(guess, url, "token", "token-victim", "127.0.0.2", seconds)
                form = pool.submit(guess, url, "form", "form-victim", "127.0.0.3", seconds)
                results[mode, "token"], results[mode, "form"] = token.result(), form.result()
            admin[mode] = admin_login(url, "token-victim")
    finally:
        for proc in (ours, baseline):
            proc.terminate()
            proc.wait(10)

    print(f"## Password guessing, one sequential guesser per route at once, {seconds:g} s")
    print()
    print("| figure | throttle on (`pbxfw serve`) | throttle off (same run) | ratio |")
    print("|---|---|---|---|")
    for route, label in (("token", "`POST /api/v1/auth/token`"), ("form", "`POST /login`")):
        on, off = results["on", route], results["off", route]
        print(
            f"| {label}: passwords checked/s | {on['guesses']:.2f} ({on['checked']:.0f} "
            f"checked, {on['refused']:.0f} refused with 429: {on['answers']:.0f} answers/s) "
            f"| {off['guesses']:.2f} | {on['guesses'] / off['guesses']:.3f} |"
        )
    off_rate = results["off", "token"]["guesses"]
    for hours, label in ((1, "the first hour"), (24, "a day")):
        on_n, off_n = long_run_guesses(hours), off_rate * 3600 * hours
        print(
            f"| passwords checked from one address in {label}, waiting out every "
            f"Retry-After (from the rule; off: this run's token rate) | {on_n} | "
            f"{off_n:,.0f} | {on_n / off_n:.5f} |"
        )
    on_status, on_time = admin["on"]
    off_status, off_time = admin["off"]
    print(
        "| the administrator's right password from another address, right after "
        f"(token route) | {on_status} in {on_time:.2f} s | {off_status} in {off_time:.2f} s | — |"
    )


_CLEAR_THROTTLE = """
import sys
from sqlalchemy import delete
from pbxfw.storage.db import database_url
from pbxfw.storage.models import LoginThrottleRow
from pbxfw.storage.repository import Store
store = Store.open(database_url(sys.argv[1]))
with store.write() as repo:
    repo.session.execute(delete(LoginThrottleRow))
"""


if __name__ == "__main__":
    main()
