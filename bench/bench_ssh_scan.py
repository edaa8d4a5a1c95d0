"""SSH scan benchmark (issue 15): pbxfw against fail2ban-regex on one auth.log.

Run: ``.venv/bin/python bench/bench_ssh_scan.py [--lines N] [--repeat R]``
(needs Debian's ``fail2ban`` package: /usr/bin/fail2ban-regex and
/etc/fail2ban/filter.d/sshd.conf).

A generated auth.log (cached under bench/out/): sshd, sshd-session and
dropbear failures of every form docs/ips-formats.md lists, among the lines a
PBX host writes around them (cron and systemd sessions, accepted logins,
connections closed before a user name). pbxfw's ``scan_files`` (kind detected
per line, one process) is timed in-process, best of ``--repeat``;
``fail2ban-regex FILE sshd.conf`` (its default ``normal`` mode) once. Both
CPU and wall time are printed: on a shared machine wall time depends on the
load. The failure counts differ on purpose (pbxfw counts one PAM attempt
once and reads forms fail2ban reads only in its other modes); both are
printed.
"""

from __future__ import annotations

import argparse
import os
import random
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from fail2ban_regex import run_fail2ban_regex
from pbxfw.ips.scan import scan_files

OUT = Path(__file__).resolve().parent / "out"
FILTER = "/etc/fail2ban/filter.d/sshd.conf"

#: (weight, template): {a} attacker address, {p} port, {u} user, {pid} pid.
LINES: tuple[tuple[int, str], ...] = (
    (30, "CRON[{pid}]: pam_unix(cron:session): session opened for user root(uid=0) by (uid=0)"),
    (30, "CRON[{pid}]: pam_unix(cron:session): session closed for user root"),
    (10, "systemd[1]: Started session-{pid}.scope - Session {pid} of User root."),
    (
        5,
        "sshd[{pid}]: Accepted publickey for admin from 192.0.2.10 port {p} ssh2: ED25519 SHA256:x",
    ),
    (8, "sshd[{pid}]: Connection closed by {a} port {p} [preauth]"),
    (4, "sshd[{pid}]: Received disconnect from {a} port {p}:11: Bye Bye [preauth]"),
    (6, "sshd[{pid}]: Invalid user {u} from {a} port {p}"),
    (6, "sshd[{pid}]: Failed password for invalid user {u} from {a} port {p} ssh2"),
    (6, "sshd[{pid}]: Failed password for root from {a} port {p} ssh2"),
    (
        4,
        "sshd[{pid}]: pam_unix(sshd:auth): authentication failure; logname= uid=0 euid=0"
        " tty=ssh ruser= rhost={a}  user=root",
    ),
    (
        2,
        "sshd[{pid}]: error: maximum authentication attempts exceeded for root from {a} port {p}"
        " ssh2 [preauth]",
    ),
    (
        2,
        "sshd[{pid}]: Disconnecting authenticating user root {a} port {p}: Too many"
        " authentication failures [preauth]",
    ),
    (2, "sshd[{pid}]: User root from {a} not allowed because listed in DenyUsers"),
    (2, "sshd[{pid}]: error: PAM: Authentication failure for illegal user {u} from {a}"),
    (
        3,
        "sshd-session[{pid}]: Connection closed by authenticating user root {a} port {p} [preauth]",
    ),
    (
        2,
        "sshd[{pid}]: Unable to negotiate with {a} port {p}: no matching key exchange method"
        " found. Their offer: diffie-hellman-group1-sha1 [preauth]",
    ),
    (1, "sshd[{pid}]: banner exchange: Connection from {a} port {p}: invalid format"),
    (
        2,
        "sshd[{pid}]: message repeated 3 times: [ Failed password for root from {a} port {p} ssh2]",
    ),
    (2, "dropbear[{pid}]: Bad password attempt for 'root' from {a}:{p}"),
    (1, "dropbear[{pid}]: Login attempt for nonexistent user from {a}:{p}"),
)
USERS = ("admin", "oracle", "test", "ubuntu", "pi", "git", "postgres", "user")


def generate(lines: int, seed: int) -> str:
    rng = random.Random(seed)
    weights = [w for w, _ in LINES]
    templates = [t for _, t in LINES]
    start = datetime(2026, 11, 25, 0, 0, tzinfo=UTC)
    out: list[str] = []
    for i, template in enumerate(rng.choices(templates, weights, k=lines)):
        stamp = (start + timedelta(seconds=i // 20)).strftime("%b %d %H:%M:%S")
        text = template.format(
            a=f"203.0.{rng.randrange(113, 114)}.{rng.randrange(1, 255)}",
            p=rng.randrange(1024, 65535),
            u=rng.choice(USERS),
            pid=rng.randrange(1000, 99999),
        )
        out.append(f"{stamp} pbx {text}\n")
    return "".join(out)


def log_file(lines: int, seed: int) -> Path:
    OUT.mkdir(exist_ok=True)
    path = OUT / f"auth_{lines}_{seed}.log"
    if not path.exists():
        path.write_text(generate(lines, seed), encoding="utf-8")
    return path


def fail2ban(path: Path) -> tuple[int, float, float]:
    """(matched lines, wall seconds, CPU seconds) of fail2ban-regex with sshd.conf."""
    run = run_fail2ban_regex(path, FILTER)
    return run.matched, run.wall, run.cpu


def pbxfw(path: Path, repeat: int) -> tuple[int, int, float, float]:
    """(failures, failures counted with their count, best wall s, its CPU s), one process."""
    reference = datetime(2026, 11, 26, tzinfo=UTC)
    best = (0, 0, float("inf"), 0.0)
    for _ in range(repeat):
        cpu = time.process_time()
        start = time.perf_counter()
        found = list(scan_files([path], reference, tz=UTC, workers=1))
        wall = time.perf_counter() - start
        if wall < best[2]:
            # getattr: the script also measures trees from before Failure.count.
            counted = sum(getattr(f, "count", 1) for f in found)
            best = (len(found), counted, wall, time.process_time() - cpu)
    return best


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lines", type=int, default=200_000)
    parser.add_argument("--seed", type=int, default=15)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    path = log_file(args.lines, args.seed)
    load = os.getloadavg()[0]
    f2b_count, f2b_wall, f2b_cpu = fail2ban(path)
    found, counted, wall, cpu = pbxfw(path, args.repeat)
    load = max(load, os.getloadavg()[0])
    n = args.lines
    print(
        f"## SSH scan, {n:,} auth.log lines ({sys.platform}, load avg up to {load:.1f}, "
        f"Python {sys.version.split()[0]})"
    )
    print()
    print("| figure | pbxfw | fail2ban-regex (same run) | ratio |")
    print("|---|---|---|---|")
    print(
        f"| wall, one process | {n / wall / 1e3:,.0f} k lines/s ({wall:.2f} s) | "
        f"{n / f2b_wall / 1e3:,.0f} k lines/s ({f2b_wall:.2f} s) | **{f2b_wall / wall:.1f}×** |"
    )
    print(f"| CPU seconds | {cpu:.2f} s | {f2b_cpu:.2f} s | {f2b_cpu / cpu:.1f}× less CPU |")
    print(
        f"| failures | {found:,} lines, {counted:,} counted | {f2b_count:,} lines matched"
        " (normal mode) | — |"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
