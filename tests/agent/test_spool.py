"""The ban spool's file (agent.spool): durable, torn-write safe, idempotent, bounded."""

from __future__ import annotations

import ipaddress
import json
import logging
import os
import shutil
import tempfile
from dataclasses import replace
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pbxfw.agent.spool import BanSpool, Spooled, SpoolFull, ban_from_record, ban_record, encode
from pbxfw.domain.bans import Ban

NOW = 1_700_000_000.25


def ban(n: int, jail: str = "asterisk", seconds: float = 3600.0) -> Ban:
    host = ipaddress.ip_network(f"198.51.{n // 250}.{n % 250 + 1}/32")
    return Ban(
        subnet=host,
        jail=jail,
        scope=frozenset({"sip", "iax"}),
        reason=f"{n} failures in 600 s",
        created_at=NOW + n / 7,
        expires_at=NOW + n / 7 + seconds,
        first_failure=NOW - 10.125,
        last_failure=NOW + 0.5,
        failures=5,
        offence=2,
    )


def reopen(path: Path, **kwargs: int) -> tuple[BanSpool, list[Ban]]:
    """A new spool on ``path`` (a restarted agent) and its pending bans."""
    spool = BanSpool(path, **kwargs)
    return spool, [r.ban for r in spool.load()]


def test_appended_bans_survive_a_restart_exactly(tmp_path: Path) -> None:
    path = tmp_path / "state" / "spool.jsonl"
    spool = BanSpool(path)
    assert spool.load() == [] and not path.exists()
    v6 = Ban(ipaddress.ip_network("2001:db8::/64"), "ssh", frozenset({"ssh"}), "x", NOW, NOW + 1)
    records = spool.append([ban(1), ban(2), v6])
    assert [r.ban for r in records] == [ban(1), ban(2), v6]
    assert len({r.id for r in records}) == 3
    assert path.stat().st_mode & 0o777 == 0o600
    again = BanSpool(path)
    assert again.load() == records  # same ids, same bans (floats exact)
    assert [r.ban for r in again.pending()] == [ban(1), ban(2), v6]


def test_acknowledged_bans_are_not_replayed_and_all_acknowledged_empties_the_file(
    tmp_path: Path,
) -> None:
    path = tmp_path / "spool.jsonl"
    spool = BanSpool(path)
    records = spool.append([ban(n) for n in range(5)])
    spool.acknowledge([records[1].id, records[3].id, "not-an-id"])
    assert [r.ban for r in spool.pending()] == [ban(0), ban(2), ban(4)]
    assert reopen(path)[1] == [ban(0), ban(2), ban(4)]
    spool.acknowledge(r.id for r in records)
    assert spool.pending() == [] and path.stat().st_size == 0
    assert reopen(path)[1] == []
    # Appending afterwards starts a fresh file.
    spool.append([ban(9)])
    assert reopen(path)[1] == [ban(9)]


@pytest.mark.parametrize("cut", [1, 8, 9, 20, -2, -1])
def test_a_record_torn_by_kill_9_is_dropped_and_appending_goes_on(
    tmp_path: Path, cut: int, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "spool.jsonl"
    BanSpool(path).append([ban(1), ban(2)])
    whole = path.read_bytes()
    BanSpool(path).append([ban(3)])
    line = path.read_bytes()[len(whole) :]
    # kill -9 in the middle of the third line's write.
    with open(path, "r+b") as f:
        f.truncate(len(whole) + (cut if cut > 0 else len(line) + cut))
    spool, pending = reopen(path)
    assert pending == [ban(1), ban(2)]
    assert "torn" in caplog.text
    assert path.read_bytes() == whole  # cut back to the last whole line
    spool.append([ban(4)])
    assert reopen(path)[1] == [ban(1), ban(2), ban(4)]


def test_zeros_and_garbage_after_a_power_cut_are_never_read_as_bans(tmp_path: Path) -> None:
    path = tmp_path / "spool.jsonl"
    BanSpool(path).append([ban(1)])
    with open(path, "ab") as f:
        f.write(b"\0" * 4096)  # the file grew, its data never reached the disk
    assert reopen(path)[1] == [ban(1)]
    with open(path, "ab") as f:
        f.write(b"00000000 {}\n" + b"zz" * 30 + b"\n")  # whole lines, wrong checksums
    assert reopen(path)[1] == [ban(1)]


def test_a_damaged_line_in_the_middle_is_skipped_and_logged(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="pbxfw.agent")
    path = tmp_path / "spool.jsonl"
    spool = BanSpool(path)
    for n in range(3):
        spool.append([ban(n)])
    lines = path.read_bytes().split(b"\n")
    lines[1] = lines[1].replace(b"198.51", b"198.52")  # bit rot: the checksum fails
    path.write_bytes(b"\n".join(lines))
    assert reopen(path)[1] == [ban(0), ban(2)]
    assert "skipped 1 damaged lines" in caplog.text


def test_a_well_formed_line_with_a_bad_ban_is_not_a_ban(tmp_path: Path) -> None:
    path = tmp_path / "spool.jsonl"
    BanSpool(path).append([ban(1)])
    good = json.loads(path.read_bytes()[9:])
    for key, value in [("subnet", "999.1.1.1/32"), ("failures", "5"), ("scope", "sip")]:
        bad = {"id": "x" + key, "ban": {**good["ban"], key: value}}
        with open(path, "ab") as f:
            f.write(encode(bad))
    assert reopen(path)[1] == [ban(1)]


def test_compaction_keeps_exactly_the_pending_bans(tmp_path: Path) -> None:
    path = tmp_path / "spool.jsonl"
    spool = BanSpool(path)
    records = spool.append([ban(n) for n in range(100)])
    spool.acknowledge(r.id for r in records[:90])
    before = path.stat().st_size
    spool.compact()
    assert path.stat().st_size < before / 5
    assert not path.with_name(path.name + ".tmp").exists()
    assert reopen(path)[1] == [ban(n) for n in range(90, 100)]
    assert BanSpool(path).load() == records[90:]  # same ids


def test_the_size_limit_refuses_without_writing_and_compacts_first(tmp_path: Path) -> None:
    path = tmp_path / "spool.jsonl"
    one = len(encode({"id": "0" * 32, "ban": ban_record(ban(10))}))
    spool = BanSpool(path, max_bytes=10 * one)
    records = [r for n in range(12) for r in _append_until_full(spool, ban(n))]
    size = path.stat().st_size
    assert 0 < len(records) < 12
    with pytest.raises(SpoolFull, match="is full"):
        spool.append([ban(99)])
    assert path.stat().st_size == size  # nothing written
    assert reopen(path, max_bytes=10 * one)[1] == [r.ban for r in records]
    # Half acknowledged: the next append compacts and fits.
    spool.acknowledge(r.id for r in records[::2])
    spool.append([ban(99)])
    assert reopen(path)[1] == [r.ban for r in records[1::2]] + [ban(99)]


def _append_until_full(spool: BanSpool, b: Ban) -> list[Spooled]:
    try:
        return list(spool.append([b]))
    except SpoolFull:
        return []


# -- any prefix of the file -----------------------------------------------------------
operations = st.lists(
    st.one_of(
        st.tuples(st.just("append"), st.integers(1, 4)),
        st.tuples(st.just("ack"), st.lists(st.integers(0, 30), max_size=4)),
    ),
    min_size=1,
    max_size=12,
)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(operations, st.data())
def test_any_prefix_loses_at_most_the_incomplete_record(
    ops: list[tuple[str, object]], data: st.DataObject
) -> None:
    """kill -9 at any byte: the pending bans are exactly those of the whole
    lines before the cut (an independent reading), whatever the torn tail
    holds; never a ban that was not written whole."""
    folder = Path(tempfile.mkdtemp())
    try:
        path = folder / "spool.jsonl"
        spool = BanSpool(path)
        written: list[str] = []
        n = 0
        for kind, arg in ops:
            if kind == "append":
                assert isinstance(arg, int)
                written += [r.id for r in spool.append([ban(n + i) for i in range(arg)])]
                n += arg
            else:
                assert isinstance(arg, list)
                # Never everything: the file would be emptied, not appended to.
                ids = [written[i] for i in arg if i < len(written)]
                if len(set(ids) & {r.id for r in spool.pending()}) < len(spool):
                    spool.acknowledge(ids)
        whole = path.read_bytes() if path.exists() else b""
        cut = data.draw(st.integers(0, len(whole)), label="cut")
        tail = data.draw(st.binary(max_size=40), label="garbage after the cut")
        copy = folder / "copy.jsonl"
        copy.write_bytes(whole[:cut] + tail.replace(b"\n", b""))
        got = BanSpool(copy).load()

        expected: dict[str, Ban] = {}
        complete = whole[:cut]
        for line in complete[: complete.rfind(b"\n") + 1].splitlines():
            obj = json.loads(line[9:])
            if "ack" in obj:
                for ident in obj["ack"]:
                    expected.pop(ident, None)
            else:
                expected[obj["id"]] = ban_from_record(obj["ban"])
        assert {r.id: r.ban for r in got} == expected
        assert copy.read_bytes() == complete[: complete.rfind(b"\n") + 1]
    finally:
        shutil.rmtree(folder)


def test_a_failed_write_leaves_no_torn_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A disk that fills up in the middle of a write: the half line is cut off."""
    path = tmp_path / "spool.jsonl"
    spool = BanSpool(path)
    spool.append([ban(1)])
    size = path.stat().st_size
    real_write = os.write

    def half(fd: int, data: bytes | memoryview) -> int:
        real_write(fd, bytes(data)[: len(data) // 2])
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "write", half)
    with pytest.raises(OSError, match="No space"):
        spool.append([ban(2)])
    monkeypatch.undo()
    assert path.stat().st_size == size
    spool.append([ban(3)])
    assert reopen(path)[1] == [ban(1), ban(3)]


def test_a_spooled_ban_keeps_its_origin_and_an_older_record_reads_as_detected(
    tmp_path: Path,
) -> None:
    """Shared bans (docs/fleet-bans.md): origin, node and site survive a
    restart; a record spooled before bans had them reads as its jail's."""
    detected = replace(ban(1), origin="jail:asterisk", node="pbx-a", site="branch")
    record = ban_record(detected)
    assert (record["origin"], record["node"], record["site"]) == (
        "jail:asterisk",
        "pbx-a",
        "branch",
    )
    assert ban_from_record(record) == detected
    older = {k: v for k, v in record.items() if k not in ("origin", "node", "site")}
    read = ban_from_record(older)
    assert (read.origin, read.node, read.site) == ("jail:asterisk", None, None)
    with pytest.raises(ValueError, match="origin"):
        ban_from_record({**record, "node": 7})
