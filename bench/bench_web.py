"""REST API under load (issue 6): GET /api/v1/networks with 1,000 networks, 50 clients.

Run: ``.venv/bin/python bench/bench_web.py [--json]`` (needs Debian's ``wrk``;
``--json`` prints the figures as one JSON object instead of the table, for
bench/compare.py).
``pbxfw serve`` runs as a real process on 127.0.0.1; wrk keeps 50
connections busy for 10 s and reports the latency distribution. Baseline in
the same run: a bare uvicorn app answering the same bytes from memory (the
floor any Python ASGI server pays per request).
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).parent))
import pbxfw
from bench_foundation import import_document, make_networks

PBXFW = str(Path(sys.executable).with_name("pbxfw"))
BASELINE_APP = """
import sys
body = open(sys.argv[1], "rb").read()
async def app(scope, receive, send):
    if scope["type"] != "http":
        return
    await send({"type": "http.response.start", "status": 200,
                "headers": [(b"content-type", b"application/json")]})
    await send({"type": "http.response.body", "body": body})
import uvicorn
uvicorn.run(app, host="127.0.0.1", port=int(sys.argv[2]), log_level="warning")
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_up(url: str) -> None:
    for _ in range(200):
        try:
            httpx.get(url, timeout=0.5)
            return
        except httpx.HTTPError:
            time.sleep(0.05)
    raise RuntimeError(f"{url} did not come up")


def wrk(url: str, token: str | None) -> dict[str, float]:
    argv = ["wrk", "-t2", "-c50", "-d10s", "--latency", url]
    if token:
        argv[1:1] = ["-H", f"Authorization: Bearer {token}"]
    out = subprocess.run(argv, capture_output=True, text=True, check=True).stdout
    figures = {}
    for pct in ("50", "90", "99"):
        m = re.search(rf"\s{pct}%\s+([\d.]+)(us|ms|s)", out)
        assert m, out
        value = float(m.group(1)) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[m.group(2)]
        figures[pct] = value
    rps = re.search(r"Requests/sec:\s+([\d.]+)", out)
    figures["rps"] = float(rps.group(1)) if rps else 0.0
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    figures["errors"] = float(errors.group(1)) if errors else 0.0
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--json", action="store_true", help="one JSON object, no table")
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="pbxfw-web-bench-"))
    db = str(tmp / "pbxfw.db")
    subprocess.run([PBXFW, "init", "--db", db], check=True, capture_output=True)
    doc = tmp / "doc.json"
    doc.write_text(import_document(make_networks(1000)))
    subprocess.run([PBXFW, "import", str(doc), "--db", db], check=True, capture_output=True)
    subprocess.run(
        [PBXFW, "user", "add", "bench", "--password-stdin", "--db", db],
        input="bench-password\n",
        text=True,
        check=True,
        capture_output=True,
    )
    port, base_port = free_port(), free_port()
    server = subprocess.Popen(
        [PBXFW, "serve", "--port", str(port), "--db", db],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    baseline = None
    try:
        url = f"http://127.0.0.1:{port}"
        wait_up(url + "/login")
        token = httpx.post(
            url + "/api/v1/auth/token", data={"username": "bench", "password": "bench-password"}
        ).json()["access_token"]
        body = httpx.get(url + "/api/v1/networks", headers={"Authorization": f"Bearer {token}"})
        assert body.status_code == 200 and len(body.json()) == 1002
        (tmp / "body.json").write_bytes(body.content)
        baseline = subprocess.Popen(
            [sys.executable, "-c", BASELINE_APP, str(tmp / "body.json"), str(base_port)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        wait_up(f"http://127.0.0.1:{base_port}/")
        ours = wrk(url + "/api/v1/networks", token)
        floor = wrk(f"http://127.0.0.1:{base_port}/", None)
    finally:
        for proc in (server, baseline):
            if proc is not None:
                proc.terminate()
                proc.wait(10)
        shutil.rmtree(tmp, ignore_errors=True)
    if args.json:
        print(json.dumps({"pbxfw": pbxfw.__file__, "pbxfw_serve": ours, "bare_uvicorn": floor}))
        return
    print("## REST API: GET /api/v1/networks, 1,000 networks, wrk -t2 -c50 -d10s")
    print()
    print("| figure | pbxfw | baseline (same run) | ratio | target |")
    print("|---|---|---|---|---|")
    print(
        f"| p99 latency | {ours['99']:.1f} ms | bare uvicorn, same bytes from memory {floor['99']:.1f} ms "
        f"| {ours['99'] / floor['99']:.1f}× | ≤ 50 ms |"
    )
    print(
        f"| p50 / p90 latency | {ours['50']:.1f} / {ours['90']:.1f} ms | {floor['50']:.1f} / {floor['90']:.1f} ms | — | — |"
    )
    print(
        f"| requests/s | {ours['rps']:,.0f} | {floor['rps']:,.0f} | {ours['rps'] / floor['rps']:.2f} | — |"
    )
    print(f"| non-2xx answers | {ours['errors']:.0f} | {floor['errors']:.0f} | — | 0 |")


if __name__ == "__main__":
    main()
