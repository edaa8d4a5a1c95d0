"""What reading the accounts tried costs the recognisers and the agent (issue 19).

Run: ``PYTHONPATH=CHECKOUT/src .venv/bin/python bench/bench_users.py [--repeat N]``
(the instrument is this ``bench/``; the code under test is CHECKOUT's, so two
runs, one per checkout, compare commits). CPU time (``time.process_time``),
best of ``--repeat``, of:

- ``scan``: ``Recogniser.scan_text`` of a 200,000-line Asterisk log
  (gen_asterisk_log.py, kind detected per line) and of a 200,000-line auth.log
  (bench_ssh_scan.py, kind ``ssh``), with the users read (the agent) and
  without (``users=False``: the offline scan); a checkout without
  ``Failure.user`` is measured once, as it is;
- ``agent``: the agent's work per failure on the same logs: recognise, then
  ``Tally.add`` and ``Detector.feed`` (agent.ips ``_feed`` without the
  whitelist test and the counters).

The two readings of one checkout are interleaved round by round.
"""

from __future__ import annotations

import argparse
import inspect
import json
import time
from collections.abc import Callable
from datetime import UTC, datetime

import pbxfw
from bench_ssh_scan import generate as generate_ssh
from gen_asterisk_log import generate as generate_asterisk
from pbxfw.agent.tally import Tally
from pbxfw.domain.settings import Settings
from pbxfw.ips.detector import Detector, DetectorParams
from pbxfw.ips.recognisers import Recogniser

REFERENCE = datetime(2026, 11, 25, tzinfo=UTC)


def recogniser(kind: str | None, users: bool | None) -> Recogniser:
    """A checkout's Recogniser; ``users`` None: without the option (an older checkout)."""
    if users is None:
        return Recogniser(kind, file="x", reference=REFERENCE, tz=UTC)
    return Recogniser(kind, file="x", reference=REFERENCE, tz=UTC, users=users)


def scan(text: str, kind: str | None, users: bool | None) -> Callable[[], int]:
    def run() -> int:
        return sum(1 for _ in recogniser(kind, users).scan_text(text))

    return run


def agent(text: str, kind: str | None, users: bool | None) -> Callable[[], int]:
    def run() -> int:
        tally = Tally()
        detector = Detector(DetectorParams.from_settings(Settings()), lambda _host: False)
        n = 0
        for failure in recogniser(kind, users).scan_text(text):
            tally.add(failure)
            detector.feed(failure)
            n += 1
        tally.take()
        return n

    return run


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--repeat", type=int, default=7)
    args = parser.parse_args()
    has_users = "users" in inspect.signature(Recogniser).parameters
    modes: list[bool | None] = [True, False] if has_users else [None]
    logs = {
        "asterisk": (generate_asterisk(200_000, 5)[0], None),
        "ssh": (generate_ssh(200_000, 7), "ssh"),
    }
    out: dict[str, object] = {"pbxfw": pbxfw.__file__}
    for part, make in (("scan", scan), ("agent", agent)):
        for name, (text, kind) in logs.items():
            runs = {mode: make(text, kind, mode) for mode in modes}
            best = dict.fromkeys(modes, float("inf"))
            count = 0
            for _ in range(args.repeat):
                for mode, run in runs.items():
                    start = time.process_time()
                    count = run()
                    best[mode] = min(best[mode], time.process_time() - start)
            for mode, seconds in best.items():
                label = {True: "users", False: "no_users", None: "as_is"}[mode]
                out[f"{part}_{name}_{label}_ms"] = round(seconds * 1000, 1)
            out[f"{name}_failures"] = count
    print(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
