"""Stored bans: bulk saves replace the ban of the same subnet and jail; reading
them back gives the same Bans, oldest first, whichever way they were written."""

from __future__ import annotations

import ipaddress
from collections.abc import Iterator
from dataclasses import replace

import pytest
from sqlalchemy import select

import pbxfw.storage.bans as storage_bans
from pbxfw.domain.bans import Ban
from pbxfw.domain.jails import JAIL_SCOPES
from pbxfw.storage.models import BanRow
from pbxfw.storage.repository import Store
from pbxfw.usecases import ConfigService

ALL = frozenset({"*"})
SIP = frozenset({"sip", "iax", "ajam"})


def ban(subnet: str, jail: str = "manual", at: float = 100.0, **changes: object) -> Ban:
    values: dict[str, object] = {
        "subnet": ipaddress.ip_network(subnet),
        "jail": jail,
        "scope": ALL if jail == "manual" else SIP,
        "reason": f"{jail} ban",
        "created_at": at,
        "expires_at": at + 600,
        "first_failure": at - 5,
        "last_failure": at - 1,
        "failures": 3,
        "offence": 1,
    }
    return Ban(**(values | changes))  # type: ignore[arg-type]


def without_ids(bans: list[Ban]) -> list[tuple[object, ...]]:
    return [(str(b.subnet), b.jail, b.scope, b.reason, b.created_at, b.expires_at) for b in bans]


@pytest.fixture(params=["json", "executemany"])
def store(request: pytest.FixtureRequest, svc: ConfigService) -> Iterator[Store]:
    """Both ways SQLite upserts: one JSON array, or executemany (no JSON1)."""
    if request.param == "executemany":
        patch = pytest.MonkeyPatch()
        patch.setattr(storage_bans, "_sqlite_has_json", lambda: False)
        yield svc.store
        patch.undo()
    else:
        yield svc.store


def test_save_bans_like_inserts_and_replaces_the_same_subnet_and_jail(store: Store) -> None:
    with store.write() as repo:
        repo.save_ban(ban("198.51.100.1", "asterisk", at=10.0))
        repo.save_ban(ban("198.51.100.2", "manual", at=10.0))
        repo.save_bans_like(
            ["198.51.100.2/32", "203.0.113.0/24", "2001:db8::/48"],
            ban("198.51.100.2", "manual", at=20.0, reason="imported"),
        )
    with store.read() as repo:
        stored = repo.bans()
    assert without_ids(stored) == [
        ("198.51.100.1/32", "asterisk", SIP, "asterisk ban", 10.0, 610.0),
        ("198.51.100.2/32", "manual", ALL, "imported", 20.0, 620.0),
        ("203.0.113.0/24", "manual", ALL, "imported", 20.0, 620.0),
        ("2001:db8::/48", "manual", ALL, "imported", 20.0, 620.0),
    ]
    assert stored[1] == ban("198.51.100.2", at=20.0, reason="imported", id=stored[1].id)
    assert len({b.id for b in stored}) == 4


def test_bans_are_oldest_first_then_by_id_and_unexpired(svc: ConfigService) -> None:
    with svc.store.write() as repo:
        for subnet, at in (("10.0.0.1", 50.0), ("10.0.0.2", 40.0), ("10.0.0.3", 50.0)):
            repo.save_ban(ban(subnet, at=at))
        repo.save_ban(ban("10.0.0.4", at=60.0, expires_at=100.0))
    with svc.store.read() as repo:
        every = repo.bans()
        assert [str(b.subnet) for b in every] == [
            "10.0.0.2/32",
            "10.0.0.1/32",
            "10.0.0.3/32",
            "10.0.0.4/32",
        ]
        assert [str(b.subnet) for b in repo.bans(now=100.0)] == [
            "10.0.0.2/32",
            "10.0.0.1/32",
            "10.0.0.3/32",
        ]
        assert repo.bans(now=10_000.0) == []
        # The column-wise fast path builds what the row-by-row mapping builds.
        rows = repo.session.execute(select(BanRow.__table__)).all()
        by_row = sorted(map(storage_bans._ban_from_row, rows), key=lambda b: (b.created_at, b.id))
        assert every == by_row


def test_bans_read_back_equal_what_was_saved(svc: ConfigService) -> None:
    saved = [
        ban("192.0.2.7", "asterisk", failures=12, offence=3),
        ban("192.0.2.0/24", "recidive", scope=ALL),
        ban("2001:db8::1", "ssh", scope=frozenset({"ssh"})),
        ban("::ffff:0:0/96", "web", scope=frozenset({"web"})),
        ban("0.0.0.0/32"),
        ban("255.255.255.255"),
    ]
    with svc.store.write() as repo:
        for b in saved:
            repo.save_ban(b)
    with svc.store.read() as repo:
        read = repo.bans()
    assert [replace(b, id=None) for b in read] == saved
    for b in read:
        parsed = ipaddress.ip_network(str(b.subnet))
        assert type(b.subnet) is type(parsed)
        if b.subnet.num_addresses <= 256:
            assert list(b.subnet.hosts()) == list(parsed.hosts())


def test_a_second_read_sees_what_changed_in_between(svc: ConfigService) -> None:
    with svc.store.write() as repo:
        repo.save_bans_like(["10.0.0.1/32", "10.0.0.2/32", "10.9.0.0/16"], ban("10.0.0.1"))
    with svc.store.read() as repo:
        assert len(repo.bans()) == 3
    with svc.store.write() as repo:
        repo.remove_bans("10.0.0.2/32")
        repo.save_bans_like(["2001:db8::/48", "10.0.0.3/32"], ban("10.0.0.1", at=200.0))
    with svc.store.read() as repo:
        second = repo.bans()
    assert [str(b.subnet) for b in second] == [
        "10.0.0.1/32",
        "10.9.0.0/16",
        "2001:db8::/48",
        "10.0.0.3/32",
    ]
    assert second[3].subnet == ipaddress.ip_network("10.0.0.3/32")


def test_kernel_bans_are_the_bans_with_what_the_kernel_needs(svc: ConfigService) -> None:
    """The agent's read: the same bans, order, times, ids and origins as
    ``bans``, the jail's scope, and no reason or failure counts."""
    with svc.store.write() as repo:
        repo.save_ban(ban("192.0.2.7", "asterisk", at=50.0, failures=12, offence=3))
        repo.save_ban(ban("192.0.2.0/24", "recidive", at=40.0, origin="jail:recidive"))
        repo.save_ban(ban("2001:db8::1", "ssh", at=60.0, node="pbx2", site="berlin"))
        repo.save_ban(ban("10.0.0.4", at=70.0, expires_at=100.0))
    with svc.store.read() as repo:
        full, kernel = repo.bans(now=100.0), repo.kernel_bans(100.0)
        assert repo.kernel_bans(10_000.0) == []
        revision = repo.ban_revisions()[0]
        assert repo.kernel_bans(100.0, since=revision) == []
    assert len(full) == 3
    assert [
        replace(
            b,
            scope=JAIL_SCOPES[b.jail],
            reason="",
            first_failure=0.0,
            last_failure=0.0,
            failures=0,
            offence=1,
        )
        for b in full
    ] == kernel


def test_count_bans_counts_the_unexpired(svc: ConfigService) -> None:
    with svc.store.write() as repo:
        repo.save_ban(ban("192.0.2.7", at=50.0))
        repo.save_ban(ban("192.0.2.8", at=60.0, expires_at=100.0))
    with svc.store.read() as repo:
        assert [repo.count_bans(now) for now in (0.0, 100.0, 10_000.0)] == [2, 1, 0]
