"""What SQLite stores, PostgreSQL stores too, and gives back unchanged.

Run on both engines (tests/conftest.py): 64-bit integers (inode numbers,
log offsets beyond 2 GiB, counters, ids an imported document carries), text
holding NUL or the escape character, the writers' lock, and a database that
``init`` has not set up.
"""

from __future__ import annotations

import ipaddress
import threading
import time
from dataclasses import replace

import pytest
from sqlalchemy import text as sql_text

import pbxfw.storage.db as storage_db
from pbxfw.domain.networks import ID_MAX
from pbxfw.domain.sources import SourceStatus
from pbxfw.errors import NotFoundError, StorageError
from pbxfw.storage.repository import Store
from pbxfw.storage.source_status import save_source_statuses, source_statuses
from pbxfw.usecases import ConfigService
from pbxfw.usecases.bans import BanService

BIG = 2**40 + 7  # beyond PostgreSQL's INTEGER


def test_64_bit_offsets_inodes_and_counters(svc: ConfigService) -> None:
    with svc.store.write() as repo:
        repo.save_log_offset("/var/log/asterisk/messages", 2**63 - 1, BIG, 1.0)
        repo.add_ips_counters("asterisk", lines=BIG, failures=3)
        repo.add_ips_counters("asterisk", lines=1)
    with svc.store.read() as repo:
        assert repo.log_offsets() == {"/var/log/asterisk/messages": (2**63 - 1, BIG)}
        assert repo.ips_counters()["asterisk"] == {
            "lines": BIG + 1,
            "failures": 3,
            "bans": 0,
            "whitelisted": 0,
        }


def test_an_id_beyond_32_bits_is_stored_and_one_beyond_64_is_a_name(svc: ConfigService) -> None:
    network = svc.network("Internet").with_changes(
        id=ID_MAX, name="far", permanent=False, subnet=ipaddress.ip_network("192.0.2.0/24")
    )
    with svc.store.write() as repo:
        repo.add_networks([network])
    assert svc.network(ID_MAX).name == "far"
    assert svc.network(str(ID_MAX)).name == "far"
    with pytest.raises(NotFoundError):
        svc.network(str(ID_MAX + 1))
    with pytest.raises(NotFoundError):
        svc.network("99999999999")


@pytest.mark.parametrize("reason", ["a\x00b", "\x01", "\x010", "\x00\x01\x00", "\\0 and \\\\"])
def test_text_with_nul_or_the_escape_round_trips(svc: ConfigService, reason: str) -> None:
    ban = BanService(svc.store).add("192.0.2.9", reason=reason)
    assert ban.reason == reason
    with svc.store.read() as repo:
        assert [b.reason for b in repo.bans()] == [reason]
    source = f"/var/log/x{reason}y"
    status = SourceStatus(source, "ssh", f"error {reason}", 1.0, 2, 3.0)
    with svc.store.write() as repo:
        save_source_statuses(repo, [status])
        save_source_statuses(repo, [status])  # replaced, found by its escaped key
    with svc.store.read() as repo:
        assert source_statuses(repo) == [status]


def test_a_bulk_import_keeps_nul_and_replaces_the_same_subnet_and_jail(
    svc: ConfigService,
) -> None:
    like = BanService(svc.store).add("192.0.2.9", reason="bulk\x00\x01")
    subnets = [f"10.0.{i >> 8}.{i & 255}/32" for i in range(1000)]
    with svc.store.write() as repo:
        repo.save_bans_like(subnets, like)
        repo.save_bans_like(subnets[:10], replace(like, offence=7))
    with svc.store.read() as repo:
        bans = {str(b.subnet): b for b in repo.bans()}
    assert len(bans) == 1001
    assert {b.reason for b in bans.values()} == {"bulk\x00\x01"}
    assert [bans[s].offence for s in subnets[:11]] == [7] * 10 + [like.offence]


def test_meta_prefixes_count_case_and_take_no_wildcards(svc: ConfigService) -> None:
    with svc.store.write() as repo:
        for key in ("pending:ns1", "pending:", "PENDING:ns2", "pendingXns3", "pending_ns4"):
            repo.set_meta(key, key)
    with svc.store.read() as repo:
        assert sorted(repo.meta_items("pending:")) == ["pending:", "pending:ns1"]
        assert sorted(repo.meta_items("pending_")) == ["pending_ns4"]
        assert repo.meta_items("%") == {}
        # Exact keys in the same query; a key not set is left out.
        assert repo.meta_items("pending_", "pendingXns3", "PENDING:ns2", "absent") == {
            "pending_ns4": "pending_ns4",
            "pendingXns3": "pendingXns3",
            "PENDING:ns2": "PENDING:ns2",
        }


def test_writers_take_turns(svc: ConfigService) -> None:
    """A second writer waits for the first to end: its read-modify-write
    then sees the first one's write (no lost update)."""
    entered, release = threading.Event(), threading.Event()
    second_done: list[float] = []

    def first() -> None:
        with svc.store.write() as repo:
            repo.add_ips_counters("ssh", bans=1)
            entered.set()
            release.wait(10)

    def second() -> None:
        entered.wait(10)
        with svc.store.write() as repo:
            repo.add_ips_counters("ssh", bans=1)
        second_done.append(time.monotonic())

    threads = [threading.Thread(target=first), threading.Thread(target=second)]
    for thread in threads:
        thread.start()
    entered.wait(10)
    time.sleep(0.3)
    assert second_done == []  # still waiting for the writer's lock
    released = time.monotonic()
    release.set()
    for thread in threads:
        thread.join(20)
    assert second_done and second_done[0] >= released
    with svc.store.read() as repo:
        assert repo.ips_counters()["ssh"]["bans"] == 2


def test_a_reader_sees_one_snapshot(svc: ConfigService) -> None:
    """What a read unit of work reads twice is the same, whatever commits between."""
    with svc.store.read() as reader:
        before = reader.revision()
        with svc.store.write() as writer:
            writer.bump_revision()
        assert reader.revision() == before
        assert [n.name for n in reader.networks()] == ["Internet", "Internet IPv6"]
    assert svc.revision() == before + 1


def test_a_database_without_its_tables_says_run_init(svc: ConfigService) -> None:
    with svc.store.write() as repo:
        repo.session.execute(sql_text("DROP TABLE meta"))
    with pytest.raises(StorageError, match=r"not initialised; run `pbxfw init`"):
        svc.revision()


def test_a_writer_waits_at_most_the_busy_timeout_then_fails(
    svc: ConfigService, db_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A writer stuck behind another is an error after the busy timeout (30 s;
    0.5 s here), on both engines: never a hang."""
    monkeypatch.setattr(storage_db, "BUSY_TIMEOUT_MS", 500)
    other = Store.open(db_url)
    try:
        with svc.store.write() as holder:
            holder.bump_revision()
            started = time.monotonic()
            with pytest.raises(StorageError, match=r"database error: .*lock"), other.write() as w:
                w.bump_revision()
            assert 0.4 <= time.monotonic() - started < 10
    finally:
        other.close()
