"""The agent's evidence ring: bounded per host, in hosts and in characters; handed over on a ban."""

from __future__ import annotations

import ipaddress
from datetime import UTC, datetime, timedelta

from pbxfw.domain.evidence import MAX_LINE_CHARS, MAX_LINES
from pbxfw.ips.detector import Detector, DetectorParams
from pbxfw.ips.events import Failure
from pbxfw.ips.evidence import EvidenceRing

A = ipaddress.ip_address("198.51.100.7")
B = ipaddress.ip_address("198.51.100.8")


def test_the_last_lines_of_a_host_are_kept_oldest_first() -> None:
    ring = EvidenceRing(3)
    for n in range(1, 6):
        ring.add("asterisk", A, "/log", n, f"line {n}\n", float(n), "InvalidPassword")
    evidence = ring.take("asterisk", A, 3, 60, failures=5)
    assert [(x.line, x.text) for x in evidence.lines] == [
        (3, "line 3"),
        (4, "line 4"),
        (5, "line 5"),
    ]
    assert (evidence.jail, evidence.maxretry, evidence.findtime, evidence.lost) == (
        "asterisk",
        3,
        60,
        0,
    )
    assert len(ring) == 0 and ring.chars == 0  # taken: forgotten


def test_the_size_is_capped_and_jails_are_apart() -> None:
    ring = EvidenceRing(1000)
    assert ring.size == MAX_LINES
    ring.add("ssh", A, "/auth", 1, "ssh line", 1.0, "InvalidUser")
    ring.add("asterisk", A, "/log", 1, "sip line", 1.0, "InvalidPassword")
    assert [x.text for x in ring.take("ssh", A, 3, 60, 1).lines] == ["ssh line"]
    assert len(ring) == 1


def test_a_host_without_lines_gives_empty_evidence_saying_what_was_lost() -> None:
    evidence = EvidenceRing(5).take("asterisk", B, 5, 60, failures=5)
    assert evidence.lines == () and evidence.lost == 5


def test_hosts_beyond_the_bound_are_evicted_oldest_first() -> None:
    ring = EvidenceRing(5, max_hosts=100)
    hosts = [ipaddress.ip_address(f"203.0.113.{n}") for n in range(150)]
    for n, host in enumerate(hosts):
        ring.add("asterisk", host, "/log", n, "x" * 10, float(n), "e")
    assert 80 <= len(ring) <= 100  # dropped an eighth at a time
    assert ring.chars == 10 * len(ring)
    assert ring.take("asterisk", hosts[0], 5, 60, 1).lines == ()
    assert [x.line for x in ring.take("asterisk", hosts[149], 5, 60, 1).lines] == [149]


def test_characters_are_bounded_whatever_the_attacker_writes() -> None:
    ring = EvidenceRing(20, max_chars=50_000)
    for n in range(1000):
        ring.add(
            "asterisk",
            ipaddress.ip_address(f"10.0.{n // 256}.{n % 256}"),
            "/l",
            n,
            "y" * 5000,
            0.0,
            "e",
        )
    assert ring.chars <= 50_000
    assert ring.chars == sum(
        len(item[2]) for ring_items in ring._rings.values() for item in ring_items
    )
    assert all(len(item[2]) <= MAX_LINE_CHARS for r in ring._rings.values() for item in r)


def test_forget_drops_a_host() -> None:
    ring = EvidenceRing(5)
    ring.add("asterisk", A, "/log", 1, "a", 1.0, "e")
    ring.add("asterisk", B, "/log", 2, "b", 1.0, "e")
    ring.forget(A, "asterisk")
    ring.forget(B)
    assert len(ring) == 0 and ring.chars == 0


def test_take_for_gives_a_recidive_ban_the_lines_of_the_ban_that_triggered_it() -> None:
    params = DetectorParams(maxretry=1, findtime=60, bantime=60, bantime_max=60)
    detector = Detector(params, lambda host: False)
    ring = EvidenceRing(params.maxretry)
    start = datetime(2026, 12, 5, tzinfo=UTC)
    found = {}
    for n in range(5):  # five bans within a day: the fifth is also a recidive ban
        failure = Failure(
            start + timedelta(minutes=2 * n), "asterisk", A, "InvalidPassword", "/log", n + 1
        )
        before = detector.counted
        made = detector.feed(failure)
        assert detector.counted == before + 1
        ring.add("asterisk", A, "/log", n + 1, f"line {n + 1}", 0.0, "InvalidPassword")
        found = ring.take_for(made, params)
    assert set(found) == {(A, "asterisk"), (A, "recidive")}
    assert [x.text for x in found[(A, "recidive")].lines] == ["line 5"]
    assert found[(A, "recidive")].maxretry == 5 and found[(A, "recidive")].findtime == 86400


def test_a_failure_not_counted_does_not_move_the_count() -> None:
    detector = Detector(DetectorParams(maxretry=5, findtime=60), lambda host: host == B)
    t = datetime(2026, 12, 5, tzinfo=UTC)
    detector.feed(Failure(t, "asterisk", A, "e", key="k"))
    counted = detector.counted
    detector.feed(Failure(t, "asterisk", A, "e", key="k"))  # the same attempt, another log
    detector.feed(Failure(t, "asterisk", B, "e"))  # whitelisted
    assert detector.counted == counted == 1
