"""The detector against a fake timeline: windows, dedup, escalation, recidive, bounds."""

from __future__ import annotations

import ipaddress
from collections import defaultdict
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import event, given, settings
from hypothesis import strategies as st

from pbxfw.domain.addresses import IPAddress
from pbxfw.domain.settings import IPS_PRESETS, Settings
from pbxfw.ips.detector import (
    DEDUP_SECONDS,
    RECIDIVE_BANTIME,
    RECIDIVE_FINDTIME,
    RECIDIVE_MAXRETRY,
    Detector,
    DetectorParams,
)
from pbxfw.ips.events import JAIL_SCOPES, BanDecision, Failure

T0 = datetime(2026, 11, 1, 8, 42, 16, tzinfo=UTC)
ATTACKER = ipaddress.ip_address("203.0.113.7")
OTHER = ipaddress.ip_address("198.51.100.9")
V6 = ipaddress.ip_address("2001:db8::7")
TRUSTED = ipaddress.ip_address("192.0.2.10")


def never(_: IPAddress) -> bool:
    return False


def make(
    maxretry: int = 3, findtime: int = 60, bantime: int = 100, bantime_max: int = 1000, **kw: int
) -> Detector:
    params = DetectorParams(
        maxretry=maxretry, findtime=findtime, bantime=bantime, bantime_max=bantime_max, **kw
    )
    return Detector(params, lambda ip: ip == TRUSTED)


def fail(at: float, host: IPAddress = ATTACKER, jail: str = "asterisk", key: str = "") -> Failure:
    return Failure(
        time=T0 + timedelta(seconds=at), jail=jail, host=host, event="InvalidPassword", key=key
    )


def feed_all(det: Detector, times: Sequence[float], **kw: object) -> list[BanDecision]:
    out: list[BanDecision] = []
    for at in times:
        out += det.feed(fail(at, **kw))  # type: ignore[arg-type]
    return out


# -- window edges ---------------------------------------------------------------


def test_n_minus_one_within_window_is_no_ban() -> None:
    assert feed_all(make(maxretry=3, findtime=60), [0, 30]) == []


def test_n_within_window_bans() -> None:
    [ban] = feed_all(make(maxretry=3, findtime=60, bantime=100), [0, 30, 59])
    assert ban.host == ATTACKER
    assert ban.jail == "asterisk"
    assert ban.scope == JAIL_SCOPES["asterisk"]
    assert ban.seconds == 100
    assert ban.failures == 3
    assert ban.time == T0 + timedelta(seconds=59)
    assert ban.first_failure == T0
    assert ban.offence == 1


def test_window_is_inclusive_of_findtime() -> None:
    assert len(feed_all(make(maxretry=3, findtime=60), [0, 30, 60])) == 1


def test_n_spread_wider_than_window_is_no_ban() -> None:
    assert feed_all(make(maxretry=3, findtime=60), [0, 30, 61]) == []


def test_sliding_window_keeps_recent_failures() -> None:
    # 0 falls out at 61, but 30, 61 and 62 are three within 60 s.
    det = make(maxretry=3, findtime=60)
    assert feed_all(det, [0, 30, 61]) == []
    assert len(det.feed(fail(62))) == 1


def test_hosts_and_jails_count_separately() -> None:
    det = make(maxretry=3)
    assert det.feed(fail(0)) == []
    assert det.feed(fail(1, host=OTHER)) == []
    assert det.feed(fail(2, jail="ssh")) == []
    assert det.feed(fail(3, host=V6)) == []
    assert det.feed(fail(4)) == []
    [ban] = det.feed(fail(5))
    assert ban.host == ATTACKER


def test_ipv6_and_compatible_ipv4_do_not_collide() -> None:
    det = make(maxretry=2)
    v4 = ipaddress.ip_address("1.2.3.4")
    compat = ipaddress.ip_address("::1.2.3.4")
    assert det.feed(fail(0, host=v4)) == []
    assert det.feed(fail(1, host=compat)) == []


def test_year_boundary_is_irrelevant() -> None:
    det = make(maxretry=3, findtime=60)
    new_year = datetime(2027, 1, 1, tzinfo=UTC)
    bans = []
    for at in (-20, -5, 10):
        bans += det.feed(
            Failure(
                time=new_year + timedelta(seconds=at),
                jail="ssh",
                host=ATTACKER,
                event="Failed password",
            )
        )
    assert len(bans) == 1
    assert bans[0].first_failure == new_year - timedelta(seconds=20)


def test_naive_time_is_refused() -> None:
    with pytest.raises(ValueError, match="aware"):
        make().feed(Failure(time=datetime(2026, 1, 1), jail="ssh", host=ATTACKER, event="x"))


@pytest.mark.parametrize("jail", ["recidive", "manual", "nope"])
def test_only_failure_jails_are_fed(jail: str) -> None:
    with pytest.raises(ValueError, match="not a jail"):
        make().feed(fail(0, jail=jail))


# -- whitelist, dedup, reset -------------------------------------------------------


def test_whitelist_is_never_counted() -> None:
    det = make(maxretry=3)
    assert feed_all(det, list(range(50)), host=TRUSTED) == []
    jail = det.stats()["jails"]["asterisk"]
    assert jail["whitelisted"] == 50
    assert jail["failures"] == 0
    assert det.stats()["tracked"] == 0


def test_whitelist_is_asked_with_the_host() -> None:
    asked: list[IPAddress] = []

    def whitelist(ip: IPAddress) -> bool:
        asked.append(ip)
        return True

    Detector(DetectorParams(maxretry=1), whitelist).feed(fail(0, host=V6))
    assert asked == [V6]


def test_same_key_within_dedup_window_counts_once() -> None:
    # Each attempt is written as a NOTICE line and a SECURITY line, same key.
    det = make(maxretry=3)
    assert det.feed(fail(0, key="call-0")) == []
    assert det.feed(fail(DEDUP_SECONDS, key="call-0")) == []
    assert det.feed(fail(10, key="call-1")) == []
    assert det.feed(fail(10, key="call-1")) == []
    [ban] = det.feed(fail(20, key="call-2"))
    assert ban.failures == 3
    assert det.stats()["jails"]["asterisk"]["duplicates"] == 2
    assert det.stats()["jails"]["asterisk"]["failures"] == 3


def test_duplicates_never_ban_alone() -> None:
    det = make(maxretry=2)
    assert det.feed(fail(0, key="k")) == []
    assert det.feed(fail(1, key="k")) == []
    assert det.feed(fail(1, key="k")) == []
    assert det.stats()["jails"]["asterisk"]["duplicates"] == 2


def test_same_key_later_or_elsewhere_counts_again() -> None:
    det = make(maxretry=2)
    assert det.feed(fail(0, key="k")) == []
    assert det.feed(fail(0, key="k", host=OTHER)) == []  # another host: its own
    assert len(det.feed(fail(DEDUP_SECONDS + 1, key="k"))) == 1


def test_empty_key_always_counts() -> None:
    assert len(feed_all(make(maxretry=3), [0, 0, 0])) == 1


def test_counter_resets_after_ban() -> None:
    det = make(maxretry=3, findtime=1000, bantime=10, bantime_max=10)
    assert len(feed_all(det, [0, 1, 2])) == 1
    # After the ban ends, 0–2 are still within findtime but were reset.
    assert feed_all(det, [13, 14]) == []
    assert len(det.feed(fail(15))) == 1


def test_failures_during_a_ban_are_not_counted() -> None:
    det = make(maxretry=2, findtime=1000, bantime=100, bantime_max=1000)
    assert len(feed_all(det, [0, 1])) == 1
    assert feed_all(det, [2, 3, 50, 100]) == []
    assert det.stats()["jails"]["asterisk"]["while_banned"] == 4
    [ban] = feed_all(det, [101, 102])
    assert ban.offence == 2


# -- escalation and decay -----------------------------------------------------------


def offend(
    det: Detector, start: int, host: IPAddress = ATTACKER, jail: str = "asterisk"
) -> list[BanDecision]:
    return feed_all(det, [start + i for i in range(det.params.maxretry)], host=host, jail=jail)


def test_escalation_doubles_up_to_the_maximum() -> None:
    det = make(
        maxretry=2,
        findtime=10,
        bantime=100,
        bantime_max=700,
        offence_memory=10**6,
        recidive_bantime=1,
    )
    lengths = []
    start = 0
    for _ in range(6):
        ban = offend(det, start)[0]  # the fifth also brings a recidive ban
        lengths.append((ban.offence, ban.seconds))
        start += ban.seconds + 10
    assert lengths == [(1, 100), (2, 200), (3, 400), (4, 700), (4, 700), (4, 700)]


def test_escalation_is_per_jail() -> None:
    det = make(maxretry=2, bantime=100, bantime_max=1000)
    assert offend(det, 0)[0].seconds == 100
    assert offend(det, 200, jail="ssh")[0].seconds == 100
    assert offend(det, 400)[0].seconds == 200


def test_default_memory_is_twice_the_maximum() -> None:
    assert DetectorParams(bantime=10, bantime_max=50).memory == 100
    assert DetectorParams(offence_memory=7).memory == 7


def test_offences_decay() -> None:
    det = make(maxretry=2, findtime=10, bantime=100, bantime_max=400)  # memory 800
    assert offend(det, 0)[0].seconds == 100
    # At 800 the first offence (at 1) is 799 s old: remembered.
    assert offend(det, 799)[0].seconds == 200
    # At 1701: offence at 1 is forgotten, offence at 800 (901 s) too.
    assert offend(det, 1700)[0].seconds == 100


def test_remember_offence_seeds_escalation() -> None:
    det = make(maxretry=2, bantime=100, bantime_max=1000)
    # Seeded out of order; both within the memory (2 × 1000 s).
    det.remember_offence(ATTACKER, "asterisk", T0 - timedelta(seconds=300))
    det.remember_offence(ATTACKER, "asterisk", T0 - timedelta(seconds=500))
    det.remember_offence(ATTACKER, "asterisk", T0 - timedelta(seconds=2500))  # forgotten
    [ban] = offend(det, 0)
    assert (ban.offence, ban.seconds) == (3, 400)


def test_remembered_active_ban_ignores_failures_until_expiry() -> None:
    det = make(maxretry=2)
    det.remember_offence(
        ATTACKER, "asterisk", T0 - timedelta(seconds=50), until=T0 + timedelta(seconds=50)
    )
    assert feed_all(det, [0, 1, 49]) == []
    assert len(feed_all(det, [50, 51])) == 1


def test_forget_clears_history() -> None:
    det = make(maxretry=2, bantime=100, bantime_max=1000)
    offend(det, 0)
    det.forget(ATTACKER)
    [ban] = offend(det, 5)  # within the old ban, but it was lifted
    assert (ban.offence, ban.seconds) == (1, 100)


# -- recidive ------------------------------------------------------------------------


def test_recidive_after_five_bans_in_a_day() -> None:
    det = make(maxretry=2, findtime=10, bantime=60, bantime_max=60)
    jails = ["asterisk", "ssh", "asterisk", "web", "ami"]
    results = [offend(det, 1000 * i, jail=jail) for i, jail in enumerate(jails)]
    assert all(len(r) == 1 for r in results[:-1])
    ban, recidive = results[-1]
    assert ban.jail == "ami"
    assert recidive.jail == "recidive"
    assert recidive.scope == frozenset({"*"})
    assert recidive.seconds == RECIDIVE_BANTIME == 7 * 86400
    assert recidive.failures == RECIDIVE_MAXRETRY
    assert recidive.first_failure == T0 + timedelta(seconds=1)
    assert det.stats()["jails"]["recidive"]["bans"] == 1
    # Banned everywhere for a week: nothing counts, in any jail.
    assert offend(det, 5000, jail="ssh") == []
    assert offend(det, 4001 + RECIDIVE_BANTIME - 2, jail="web") == []
    # Afterwards the count of recent bans starts again.
    assert len(offend(det, 4001 + RECIDIVE_BANTIME, jail="web")) == 1


def test_five_bans_spread_over_more_than_a_day_are_no_recidive() -> None:
    det = make(maxretry=1, bantime=60, bantime_max=60)
    step = RECIDIVE_FINDTIME // 4 + 1
    bans = [offend(det, step * i) for i in range(5)]
    assert all(len(b) == 1 for b in bans)


def test_remembered_bans_count_for_recidive() -> None:
    det = make(maxretry=2, bantime=60, bantime_max=60)
    for i, jail in enumerate(["ssh", "web", "asterisk", "ami"]):
        det.remember_offence(ATTACKER, jail, T0 - timedelta(hours=i + 1))
    assert [b.jail for b in offend(det, 0, jail="ssh")] == ["ssh", "recidive"]


def test_remembered_recidive_ban_resets_the_count() -> None:
    det = make(maxretry=2, bantime=60, bantime_max=60)
    for i, jail in enumerate(["ssh", "web", "asterisk", "ami"]):
        det.remember_offence(ATTACKER, jail, T0 - timedelta(hours=i + 2))
    det.remember_offence(ATTACKER, "recidive", T0 - timedelta(hours=1))
    assert [b.jail for b in offend(det, 0, jail="ssh")] == ["ssh"]


# -- presets ---------------------------------------------------------------------------


@pytest.mark.parametrize("preset", sorted(IPS_PRESETS))
def test_presets(preset: str) -> None:
    values = IPS_PRESETS[preset]
    params = DetectorParams.from_settings(Settings().updated({"ips_preset": preset}))
    assert (params.maxretry, params.findtime, params.bantime) == (
        values["ips_maxretry"],
        values["ips_findtime"],
        values["ips_bantime"],
    )
    n, window = params.maxretry, params.findtime
    spread = [window * i // (n - 1) for i in range(n)]  # first and last exactly findtime apart
    det = Detector(params, never)
    assert feed_all(det, spread[:-1]) == []
    [ban] = det.feed(fail(spread[-1]))
    assert ban.seconds == params.bantime
    wide = [window * i // (n - 1) + (1 if i == n - 1 else 0) for i in range(n)]
    assert feed_all(Detector(params, never), wide, host=OTHER) == []


def test_params_are_validated() -> None:
    with pytest.raises(ValueError, match="bantime_max"):
        DetectorParams(bantime=10, bantime_max=5)
    with pytest.raises(ValueError, match="maxretry"):
        DetectorParams(maxretry=0)


# -- bounds ------------------------------------------------------------------------------


def test_stale_hosts_are_pruned() -> None:
    det = make(maxretry=5, findtime=60)
    for i in range(5000):
        det.feed(fail(0, host=ipaddress.IPv4Address(0x0A000000 + i)))
    for i in range(5000):
        det.feed(fail(1000, host=ipaddress.IPv4Address(0x0B000000 + i)))
    stats = det.stats()
    assert stats["pruned"] == 5000
    assert stats["tracked"] == 5000
    assert stats["evicted"] == 0


def test_tracked_hosts_are_capped_least_recent_first() -> None:
    det = make(maxretry=2, findtime=10**6, max_tracked=100)
    for i in range(1000):
        det.feed(fail(i, host=ipaddress.IPv4Address(0x0A000000 + i)))
        assert det.stats()["tracked"] <= 100
    assert det.stats()["evicted"] == 1000 - det.stats()["tracked"]
    # The most recent host is still counted, the oldest is not.
    assert len(det.feed(fail(1000, host=ipaddress.IPv4Address(0x0A000000 + 999)))) == 1
    assert det.feed(fail(1000, host=ipaddress.IPv4Address(0x0A000000))) == []


def test_ban_records_are_capped() -> None:
    det = make(maxretry=1, bantime=10, bantime_max=10, max_offenders=100)
    for i in range(1000):
        det.feed(fail(i, host=ipaddress.IPv4Address(0x0A000000 + i)))
        assert det.stats()["offenders"] <= 100


def test_stats_list_every_failure_jail() -> None:
    assert set(make().stats()["jails"]) == {"asterisk", "ami", "ssh", "web", "recidive"}


# -- property: the detector equals a brute-force reference ------------------------------


HOSTS = [ATTACKER, OTHER, V6, TRUSTED]
JAILS = ["asterisk", "ssh"]


def reference(
    params: DetectorParams, events: list[tuple[int, int, int, str]]
) -> list[tuple[str, str, int, int, int, int]]:
    """The documented rules, from the whole history, with no cleverness."""
    out = []
    sightings: dict[tuple[str, IPAddress, str], list[int]] = defaultdict(list)
    window: dict[tuple[str, IPAddress], list[int]] = defaultdict(list)
    offences: dict[tuple[str, IPAddress], list[int]] = defaultdict(list)
    until: dict[tuple[str, IPAddress], int] = defaultdict(lambda: -(10**18))
    recent: dict[IPAddress, list[int]] = defaultdict(list)
    for t, h, jx, key in events:
        host, jail = HOSTS[h], JAILS[jx]
        if host == TRUSTED:
            continue
        if key:
            seen = sightings[(jail, host, key)]
            if any(abs(t - s) <= DEDUP_SECONDS for s in seen):
                continue
            seen.append(t)
        if t < until[(jail, host)] or t < until[("recidive", host)]:
            continue
        times = window[(jail, host)]
        times.append(t)
        times[:] = [s for s in times if s >= max(times) - params.findtime]
        if len(times) < params.maxretry:
            continue
        count = len(times)
        times.clear()
        offences[(jail, host)].append(t)
        n = len([s for s in offences[(jail, host)] if s >= t - params.memory])
        seconds = min(params.bantime * 2 ** (n - 1), params.bantime_max)
        until[(jail, host)] = max(until[(jail, host)], t + seconds)
        out.append((str(host), jail, t, seconds, count, min(n, params.steps)))
        recent[host].append(t)
        if len([s for s in recent[host] if s >= t - RECIDIVE_FINDTIME]) >= RECIDIVE_MAXRETRY:
            recent[host].clear()
            until[("recidive", host)] = t + params.recidive_bantime
            out.append((str(host), "recidive", t, params.recidive_bantime, 5, 1))
    return out


@settings(max_examples=300, deadline=None)
@given(
    maxretry=st.integers(1, 4),
    findtime=st.integers(1, 30),
    bantime=st.integers(1, 20),
    factor=st.integers(1, 10),
    memory=st.none() | st.integers(1, 400),
    steps=st.lists(
        st.tuples(
            st.integers(0, 8),
            st.sampled_from([0, 0, 0, 1, 2, 3]),
            st.integers(0, 1),
            st.sampled_from(["", "", "a", "b"]),
        ),
        min_size=1,
        max_size=150,
    ),
)
def test_matches_brute_force_reference(
    maxretry: int,
    findtime: int,
    bantime: int,
    factor: int,
    memory: int | None,
    steps: list[tuple[int, int, int, str]],
) -> None:
    params = DetectorParams(
        maxretry=maxretry,
        findtime=findtime,
        bantime=bantime,
        bantime_max=bantime * factor,
        offence_memory=memory,
        recidive_bantime=50,
    )
    events = []
    t = 0
    for gap, h, jx, key in steps:
        t += gap
        events.append((t, h, jx, key))
    det = Detector(params, lambda ip: ip == TRUSTED)
    got = []
    for t, h, jx, key in events:
        for ban in det.feed(fail(t, host=HOSTS[h], jail=JAILS[jx], key=key)):
            got.append(
                (
                    str(ban.host),
                    ban.jail,
                    int((ban.time - T0).total_seconds()),
                    ban.seconds,
                    ban.failures,
                    ban.offence,
                )
            )
    expected = reference(params, events)
    event(f"bans: {min(len(expected), 3)}")
    event(f"recidive: {any(b[1] == 'recidive' for b in expected)}")
    assert got == expected
