"""The login throttle's rule (pure): keys, runs of failures, locks and delays."""

from __future__ import annotations

import pytest

from pbxfw.domain.login_throttle import (
    LOCK_MAX,
    MEMORY,
    WINDOW,
    ThrottleRecord,
    account_delay,
    address_key,
    address_lock,
    count_failure,
    is_stale,
    retry_after,
    user_key,
)

T0 = 1_000_000.0


def run(key: str, times: list[float]) -> ThrottleRecord:
    record: ThrottleRecord | None = None
    for t in times:
        record = count_failure(record, key, t)
    assert record is not None
    return record


def test_keys_name_the_kind_and_an_ipv6_client_counts_by_its_64() -> None:
    assert user_key("admin") == "user:admin"
    assert len(user_key("x" * 1000)) == len("user:") + 128
    assert address_key("203.0.113.5") == "address:203.0.113.5"
    assert address_key("2001:db8:1:2::5") == address_key("2001:db8:1:2:ffff::1")
    assert address_key("2001:db8:1:2::5") == "address:2001:db8:1:2::/64"
    assert address_key("2001:db8:1:3::5") != address_key("2001:db8:1:2::5")
    assert address_key("::ffff:192.0.2.1") == "address:192.0.2.1"
    assert address_key("testclient") == "address:testclient"


def test_five_failures_within_a_minute_lock_an_address_and_each_further_one_doubles() -> None:
    record = run("address:a", [T0 + i for i in range(4)])
    assert record.failures == 4 and address_lock(record.failures) == 0
    record = count_failure(record, "address:a", T0 + 10)
    assert record.failures == 5 and address_lock(5) == 30
    assert [address_lock(n) for n in range(5, 12)] == [30, 60, 120, 240, 480, 900, 900]
    assert address_lock(10**6) == LOCK_MAX  # no float overflow


def test_failures_spread_wider_than_the_window_start_a_new_run() -> None:
    record = run("address:a", [T0, T0 + 1, T0 + 2, T0 + 3])
    record = count_failure(record, "address:a", T0 + WINDOW + 1)
    assert record.failures == 1 and record.first_failure == T0 + WINDOW + 1


def test_a_key_past_the_threshold_is_remembered_for_an_hour_after_its_lock() -> None:
    record = run("address:a", [T0 + i for i in range(6)])
    record = ThrottleRecord(
        record.key, record.failures, record.first_failure, record.last_failure, T0 + 100
    )
    assert not is_stale(record, T0 + 100 + MEMORY - 1)
    assert count_failure(record, "address:a", T0 + 100 + MEMORY - 1).failures == 7
    assert is_stale(record, T0 + 100 + MEMORY + 1)
    assert count_failure(record, "address:a", T0 + 100 + MEMORY + 1).failures == 1


def test_a_locked_record_is_never_stale() -> None:
    record = ThrottleRecord("address:a", 1, T0, T0, T0 + 10 * MEMORY)
    assert not is_stale(record, T0 + 5 * MEMORY)


def test_an_account_is_only_delayed_growing_to_a_few_seconds() -> None:
    assert [account_delay(n) for n in range(0, 5)] == [0, 0, 0, 0, 0]
    assert [account_delay(n) for n in range(5, 11)] == [1, 2, 4, 8, 8, 8]


@pytest.mark.parametrize(("left", "expected"), [(0.2, 1), (1.0, 1), (29.1, 30), (-5, 1)])
def test_retry_after_is_whole_seconds_and_at_least_one(left: float, expected: int) -> None:
    assert retry_after(ThrottleRecord("address:a", 5, T0, T0, T0 + left), T0) == expected
