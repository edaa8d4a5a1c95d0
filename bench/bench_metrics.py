"""Metrics and dashboard figures (issue 19).

Run as root: ``.venv/bin/python bench/bench_metrics.py``. Three parts:

- **scrape**: a real agent (``pbxfw agent --netns NS --metrics``) keeps a
  namespace's table with 10,000 networks (firewall on) and 100,000 bans
  (``pbxfw bans import``); once its kernel holds them all, 20 scrapes of its
  ``/metrics`` over HTTP, and 20 of the web server's collector (from the
  database); and the costs a scrape pays after a change: the web server's
  count of the stored bans, the agent's count of its sets. Baseline in the
  same run: ``nft -t -j list table`` of that table (what reading the drop
  counters through nft would cost; the agent reads them over netlink).
- **latency under scrapes**: another agent (an empty ban list, as
  bench_ips_kernel.py); a failure line appended to its log (``ips_maxretry``
  1) until the kernel holds the ban (``nft monitor``), p50/p99 over 2 × 60
  attackers with nobody scraping (the baseline) and 2 × 60 while a scraper
  fetches ``/metrics`` every second, the rounds alternating.
- **dashboard**: a week of 1,000,000 failures (20,000 addresses, three jails,
  100,000 distinct user names and extensions tried: a scanner's long tail
  and a few names tried often) tallied as the agent does (agent.tally) and
  added hour by hour (usecases.dashboard ``record_tallies``: one flush per
  simulated hour, which keeps 100 accounts per hour and jail); then
  ``GET /dashboard`` 20 times in-process (server time: routing, the reads, the
  SVG, the template). Baseline in the same run: ``GET /dashboard`` of an
  empty database.

``--json`` prints the figures as one JSON object instead of the table.
"""

from __future__ import annotations

import argparse
import ipaddress
import json
import os
import random
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from datetime import UTC, datetime
from pathlib import Path

from bench_foundation import import_document, make_networks

NS = f"pbxfwbench-m{os.getpid()}"
PBXFW = str(Path(sys.executable).with_name("pbxfw"))
N_BANS = 100_000
N_NETWORKS = 10_000
N_FAILURES = 1_000_000
N_SOURCES = 20_000
N_ACCOUNTS = 100_000


def sh(*argv: str, input: str | None = None) -> str:
    return subprocess.run(argv, input=input, capture_output=True, text=True, check=True).stdout


def nsexec(*argv: str) -> str:
    return sh("ip", "netns", "exec", NS, *argv)


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def ms(seconds: list[float]) -> dict[str, float]:
    ordered = sorted(seconds)
    return {
        "p50": statistics.median(ordered) * 1000,
        "p95": ordered[min(len(ordered) - 1, int(len(ordered) * 0.95))] * 1000,
        "max": ordered[-1] * 1000,
    }


def addresses(n: int, seed: int) -> list[str]:
    rng = random.Random(seed)
    found: set[str] = set()
    while len(found) < n:
        found.add(str(ipaddress.IPv4Address(rng.randrange(0x0B000000, 0xDF000000))))
    return sorted(found)


def latency(messages: Path, seed: int) -> list[float]:
    """Seconds from a failure line written to its ban in the kernel, 60 attackers."""
    seen: dict[str, float] = {}
    monitor = subprocess.Popen(
        ["ip", "netns", "exec", NS, "nft", "monitor", "elements"], stdout=subprocess.PIPE, text=True
    )

    def watch() -> None:
        assert monitor.stdout is not None
        for line in monitor.stdout:
            if "ban_asterisk_v4" in line and line.startswith("add element"):
                seen.setdefault(line.split("{", 1)[1].split()[0], time.monotonic())

    threading.Thread(target=watch, daemon=True).start()
    time.sleep(0.3)
    took = []
    try:
        for address in addresses(60, seed):
            stamp = time.strftime("%Y-%m-%d %H:%M:%S")
            start = time.monotonic()
            with messages.open("a") as f:
                f.write(
                    f"[{stamp}] NOTICE[1] res_pjsip/pjsip_distributor.c: Request 'REGISTER' from "
                    f"'<sip:101@10.0.0.1>' failed for '{address}:5060' (callid: x) - "
                    "Failed to authenticate\n"
                )
            deadline = start + 2.0
            while address not in seen and time.monotonic() < deadline:
                time.sleep(0.001)
            took.append(seen.get(address, deadline) - start)
            time.sleep(0.05)
    finally:
        monitor.terminate()
        monitor.wait(5)
    return took


def scrape_part(tmp: Path) -> dict[str, object]:
    from prometheus_client import generate_latest

    from pbxfw.storage.db import database_url
    from pbxfw.storage.repository import Store
    from pbxfw.usecases.dashboard import _bans_cached
    from pbxfw.usecases.metrics import registry, set_counts

    db = str(tmp / "pbxfw.db")
    messages = tmp / "messages"
    messages.touch()
    sh(PBXFW, "init", "--db", db)
    doc = tmp / "networks.json"
    doc.write_text(import_document(make_networks(N_NETWORKS)))
    sh(PBXFW, "import", str(doc), "--db", db)
    settings = [
        "ips_maxretry=1",
        "firewall_enabled=true",
        f"log_asterisk_messages={messages}",
        f"log_asterisk_security={tmp / 'security_log'}",
        f"log_ssh={tmp / 'auth'}",
        f"log_web={tmp / 'web'}",
        "asterisk_config_dir=",
    ]
    sh(PBXFW, "settings", "set", *settings, "--db", db)
    bans = tmp / "bans.txt"
    bans.write_text("\n".join(addresses(N_BANS, 9)) + "\n")
    sh(PBXFW, "bans", "import", str(bans), "--db", db)
    port = free_port()
    sh("ip", "netns", "add", NS)
    agent = subprocess.Popen(
        [
            *(PBXFW, "agent", "--netns", NS, "--db", db, "--state-dir", str(tmp / "state")),
            *("--metrics", f"127.0.0.1:{port}", "--node", "bench"),
        ],
        stdout=subprocess.DEVNULL,
        stderr=open(os.environ.get("PBXFW_BENCH_AGENT_LOG", os.devnull), "w"),  # noqa: SIM115
    )
    url = f"http://127.0.0.1:{port}/metrics"
    try:

        def fetch() -> bytes:
            with urllib.request.urlopen(url, timeout=10) as answer:
                return bytes(answer.read())

        deadline = time.monotonic() + 120
        while True:
            try:
                body = fetch().decode()
                held = sum(
                    float(line.rsplit(" ", 1)[1])
                    for line in body.splitlines()
                    if line.startswith("pbxfw_bans_active{")
                )
                # (the table keeps the bans its whitelist and networks allow: ~99.5 %)
                if held >= 0.99 * N_BANS:
                    break
            except OSError:
                pass
            if time.monotonic() > deadline or agent.poll() is not None:
                raise SystemExit("the agent did not load the bans within 120 s")
            time.sleep(0.5)
        time.sleep(2)
        agent_times = []
        for _ in range(20):
            start = time.perf_counter()
            fetch()
            agent_times.append(time.perf_counter() - start)
        store = Store.open(database_url(db))
        web = registry(store, time.time)
        generate_latest(web)
        web_times = []
        for _ in range(20):
            start = time.perf_counter()
            generate_latest(web)
            web_times.append(time.perf_counter() - start)
        # After a ban was written or removed: the stored bans counted again.
        web_cold = []
        for _ in range(10):
            _bans_cached.clear()
            start = time.perf_counter()
            generate_latest(web)
            web_cold.append(time.perf_counter() - start)
        store.close()
        # After the agent's ban sets changed: its set counts made again.
        snapshot = {(a + "/32", "manual"): 0.0 for a in addresses(N_BANS, 9)}
        counts = []
        for _ in range(10):
            start = time.perf_counter()
            set_counts(snapshot)
            counts.append(time.perf_counter() - start)
        nft_times = []
        for _ in range(20):
            start = time.perf_counter()
            nsexec("nft", "-t", "-j", "list", "table", "inet", "pbxfw")
            nft_times.append(time.perf_counter() - start)

        return {
            "agent_scrape_ms": ms(agent_times),
            "web_scrape_ms": ms(web_times),
            "web_scrape_after_ban_change_ms": ms(web_cold),
            "agent_set_count_after_change_ms": ms(counts),
            "nft_list_ms": ms(nft_times),
            "scrape_bytes": len(fetch()),
            "bans_held": held,
        }
    finally:
        agent.terminate()
        try:
            agent.wait(20)
        except subprocess.TimeoutExpired:
            agent.kill()
        subprocess.run(["ip", "netns", "del", NS], check=False)


def latency_part(tmp: Path) -> dict[str, object]:
    """failure → kernel with nobody scraping and with a scrape every second,
    alternating rounds of 60 attackers, against one agent (as bench_ips_kernel)."""
    db = str(tmp / "pbxfw.db")
    messages = tmp / "messages"
    messages.touch()
    sh(PBXFW, "init", "--db", db)
    settings = [
        "ips_maxretry=1",
        f"log_asterisk_messages={messages}",
        f"log_asterisk_security={tmp / 'security_log'}",
        f"log_ssh={tmp / 'auth'}",
        f"log_web={tmp / 'web'}",
        "asterisk_config_dir=",
    ]
    sh(PBXFW, "settings", "set", *settings, "--db", db)
    port = free_port()
    sh("ip", "netns", "add", NS)
    agent = subprocess.Popen(
        [
            *(PBXFW, "agent", "--netns", NS, "--db", db, "--state-dir", str(tmp / "state")),
            *("--metrics", f"127.0.0.1:{port}", "--node", "bench"),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}/metrics"
    try:
        for _ in range(100):
            if "pbxfw" in nsexec("nft", "list", "tables"):
                break
            time.sleep(0.1)
        time.sleep(1.0)
        quiet: list[float] = []
        scraped: list[float] = []
        scrapes: list[float] = []
        for round_ in range(4):
            if round_ % 2 == 0:
                quiet += latency(messages, 10 + round_)
                continue
            stop = threading.Event()

            def scraper(stop: threading.Event = stop) -> None:
                while not stop.wait(1.0):
                    start = time.perf_counter()
                    with urllib.request.urlopen(url, timeout=10) as answer:
                        answer.read()
                    scrapes.append(time.perf_counter() - start)

            thread = threading.Thread(target=scraper, daemon=True)
            thread.start()
            scraped += latency(messages, 10 + round_)
            stop.set()
            thread.join(15)

        def p99(values: list[float]) -> float:
            ordered = sorted(values)
            return ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))] * 1000

        return {
            "latency_quiet_ms": {**ms(quiet), "p99": p99(quiet)},
            "latency_scraped_ms": {**ms(scraped), "p99": p99(scraped)},
            "scrapes_during": len(scrapes),
            "scrape_during_ms": ms(scrapes),
        }
    finally:
        agent.terminate()
        try:
            agent.wait(20)
        except subprocess.TimeoutExpired:
            agent.kill()
        subprocess.run(["ip", "netns", "del", NS], check=False)


def dashboard_part(tmp: Path) -> dict[str, object]:
    from fastapi.testclient import TestClient

    from pbxfw.agent.tally import Tally
    from pbxfw.ips.events import Failure
    from pbxfw.storage.db import database_url
    from pbxfw.storage.repository import Store
    from pbxfw.usecases import ConfigService
    from pbxfw.usecases.dashboard import record_tallies
    from pbxfw.usecases.users import UserService
    from pbxfw.web.app import create_app

    def app_for(name: str) -> tuple[TestClient, Store]:
        store = Store.open(database_url(str(tmp / name)), create=True)
        ConfigService(store).init()
        UserService(store).set_password("bench", "bench-password-1")
        client = TestClient(create_app(store, secret_key=b"k" * 32, login_throttle=False))
        token = client.get("/login").text.split('name="csrf_token" value="', 1)[1].split('"', 1)[0]
        client.post(
            "/login",
            data={"username": "bench", "password": "bench-password-1", "csrf_token": token},
        )
        return client, store

    def page_times(client: TestClient) -> list[float]:
        client.get("/dashboard")  # the first one warms the templates
        times = []
        for _ in range(20):
            start = time.perf_counter()
            answer = client.get("/dashboard")
            times.append(time.perf_counter() - start)
            assert answer.status_code == 200, answer.status_code
        return times

    empty_client, empty_store = app_for("empty.db")
    empty = page_times(empty_client)
    client, store = app_for("week.db")
    rng = random.Random(5)
    sources = [ipaddress.ip_address(a) for a in addresses(N_SOURCES, 7)]
    jails = [("asterisk", "ChallengeResponseFailed"), ("asterisk", "InvalidAccountID")]
    jails += [("ssh", "invalid_user"), ("ami", "failed_login")]
    now = time.time()
    start_week = now - 7 * 86400
    per_hour = N_FAILURES // (7 * 24)
    # A commit before migration 0018 has no Failure.user: it is measured without.
    users = "user" in Failure.__slots__
    tally = Tally()
    flushes = []
    tallied = 0.0
    for h in range(7 * 24):
        hour_start = start_week + h * 3600
        hour: list[Failure] = []
        for _ in range(per_hour):
            jail, event = rng.choice(jails)
            when = datetime.fromtimestamp(hour_start + rng.random() * 3600, UTC)
            # A few addresses do most of the attacking (a Pareto draw).
            source = sources[min(N_SOURCES - 1, int(rng.paretovariate(1.2)) - 1)]
            # Half the names from a scanner's list (each rarely), half a few
            # names tried often: 100,000 distinct names over the week.
            if rng.random() < 0.5:
                n = rng.randrange(N_ACCOUNTS)
            else:
                n = min(N_ACCOUNTS - 1, int(rng.paretovariate(1.2)) - 1)
            user = str(1000 + n) if jail == "asterisk" else f"user{n}"
            if users:
                hour.append(Failure(when, jail, source, event, user=user))
            else:
                hour.append(Failure(when, jail, source, event))
        made = time.perf_counter()  # what the agent's _feed adds per failure
        for failure in hour:
            tally.add(failure)
        tallied += time.perf_counter() - made
        taken = tally.take()
        started = time.perf_counter()
        record_tallies(store, "bench", taken, hour_start + 3600)
        flushes.append(time.perf_counter() - started)
    week = page_times(client)
    with store.engine.connect() as connection:
        from sqlalchemy import text

        rows = {
            t: int(connection.execute(text(f"SELECT count(*) FROM {t}")).scalar() or 0)
            for t in ("attack_hours", "attack_sources", "attack_users")[: 3 if users else 2]
        }
    store.close()
    empty_store.close()
    return {
        "dashboard_ms": ms(week),
        "dashboard_empty_ms": ms(empty),
        "failures": per_hour * 7 * 24,
        "tally_us_per_failure": tallied / (per_hour * 7 * 24) * 1e6,
        "flush_ms": ms(flushes),
        "rows": rows,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--json", action="store_true", help="one JSON object, no table")
    parser.add_argument("--only", choices=["scrape", "latency", "dashboard"], help="one part only")
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="pbxfw-bench-metrics-"))
    out: dict[str, object] = {}
    for name, part in (
        ("scrape", scrape_part),
        ("latency", latency_part),
        ("dashboard", dashboard_part),
    ):
        if args.only in (None, name):
            (tmp / name).mkdir()
            out.update(part(tmp / name))
    out["load_average"] = os.getloadavg()
    if args.json:
        print(json.dumps(out, indent=1))
        return
    for key, value in out.items():
        print(f"{key}: {value}")


if __name__ == "__main__":
    main()
