"""A random-source flood against the real Asterisk: the phones keep registering (issue 18).

An Internet host floods the PBX's public address, udp/5060, from a new
(spoofed) source address every packet — ``tests/kernel/spoof.py``, a raw
socket in the inet namespace, as fast as it can, ``rp_filter`` off — while
the office's 20 SIPp phones register with digest auth, twice each. Each
flood sends 1,050,000 packets from as many addresses; the phones must be done
before it ends. pbxfw's rules are
loaded with the real CLI (``pbxfw apply``; no agent needed: the protection is
in the ruleset). Two rounds in the same run: with pbxfw's conntrack flood
protection (``sip_notrack=true``; off by default) and without it.

The flood's payload is a SIP keep-alive (CRLF CRLF), which PJSIP reads and
ignores: this test is about connection tracking, not about Asterisk parsing a
flood (the SIP rate limit and the jails are other tests). Bounded: each flood
stops after ``FLOOD_MAX_SECONDS`` at the latest. Its summary lines are the
figure of record in docs/benchmarks.md (issue 18).
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from tests.kernel.spoof import result, spoof_flood

from .conftest import OFFICE_NET, PBX_LAN, PBX_WAN, PHONES, PbxLab
from .firewall import Firewall, PbxfwCommandFailed
from .monitor import BanMonitor
from .summary import SUMMARY
from .tools import Sipp, office_phones, registrations_ok

pytestmark = pytest.mark.e2e

#: one new source address per packet, as fast as the lab can send (bounded by time)
FLOOD_SOURCES, FLOOD_MAX_SECONDS = 1_050_000, 60.0
SPOOFED = "100.64.0.0/10"  # 4,194,304 addresses
#: each phone registers twice, 1 s apart; the phones start 2 s into the flood
LOOPS, INTERVAL_MS, PHONE_RATE = 2, 1000, 20
#: entries the protected round may hold: the phones' and the lab's own flows
PROTECTED_MAX_ENTRIES = 1000


@dataclass
class Round:
    sent: int
    pps: float
    peak_entries: int
    registrations: int
    expected: int
    phones_within_flood: bool

    @property
    def share(self) -> float:
        return self.registrations / self.expected


def conntrack_count(pbx_lab: PbxLab) -> int:
    text = pbx_lab.lab.exec(pbx_lab.pbx, "cat", "/proc/sys/net/netfilter/nf_conntrack_count")
    return int(text)


@pytest.fixture(scope="module")
def firewall(pbx_lab: PbxLab) -> Iterator[Firewall]:
    work = pbx_lab.workdir / "pbxfw-flood"
    work.mkdir()
    fw = Firewall(work / "pbxfw.db", work, pbx_lab.pbx, BanMonitor(pbx_lab.pbx))
    try:
        try:
            fw.cli("init")
            fw.cli("network", "add", "office", OFFICE_NET, "--allow", "sip", "--local")
            fw.cli("settings", "set", "firewall_enabled=true", "ips_enabled=true")
        except PbxfwCommandFailed as exc:
            pytest.fail(f"pbxfw CLI contract not met:\n{exc}", pytrace=False)
        for key in ("all", "default", "wan0"):
            pbx_lab.lab.exec(pbx_lab.pbx, "sysctl", "-qw", f"net.ipv4.conf.{key}.rp_filter=0")
        yield fw
    finally:
        fw.stop()


def flood_round(pbx_lab: PbxLab, fw: Firewall, *, protected: bool) -> Round:
    name = "protected" if protected else "unprotected"
    fw.cli("settings", "set", f"sip_notrack={'true' if protected else 'false'}")
    fw.apply()
    flood = spoof_flood(
        pbx_lab.lab,
        pbx_lab.inet,
        sources=SPOOFED,
        dst=PBX_WAN,
        seconds=FLOOD_MAX_SECONDS,
        total=FLOOD_SOURCES,
        payload="\r\n\r\n",
    )
    peak = 0
    time.sleep(2.0)  # the table fills at the flood's rate; then the phones start
    phones = Sipp(pbx_lab.office, PHONES, PBX_LAN, pbx_lab.workdir).register(
        f"flood-{name}",
        office_phones(),
        loops=LOOPS,
        interval_ms=INTERVAL_MS,
        port=5070 + protected,
        rate=PHONE_RATE,
    )
    while phones.proc.poll() is None:
        peak = max(peak, conntrack_count(pbx_lab))
        time.sleep(0.5)
    phones.wait()
    during = flood.poll() is None
    peak = max(peak, conntrack_count(pbx_lab))
    out = result(flood, timeout=FLOOD_MAX_SECONDS + 30)
    ok = len(registrations_ok(phones))
    expected = len(office_phones()) * LOOPS
    one = Round(int(out["sent"]), out["sent"] / out["seconds"], peak, ok, expected, during)
    SUMMARY.fact(
        f"random-source flood, {name}",
        f"{one.sent} packets from {min(one.sent, 1 << 22)} sources at {one.pps:.0f}/s; "
        f"conntrack peak {peak}; registrations {ok}/{expected} ({100 * one.share:.1f} %)"
        + ("" if during else "; the phones outlasted the flood"),
    )
    return one


def test_phones_register_during_a_random_source_flood(pbx_lab: PbxLab, firewall: Firewall) -> None:
    # Protected first: its round leaves no entries behind for the other one.
    protected = flood_round(pbx_lab, firewall, protected=True)
    unprotected = flood_round(pbx_lab, firewall, protected=False)
    for one in (protected, unprotected):
        assert one.phones_within_flood, one  # the registrations happened under the flood
        assert one.sent >= 1_000_000, one
    assert protected.share >= 0.99, protected
    assert protected.peak_entries < PROTECTED_MAX_ENTRIES, protected
    # The same flood without the protection really fills connection tracking
    # (one entry per source until the table is full).
    assert unprotected.peak_entries >= min(20_000, unprotected.sent // 4), unprotected
