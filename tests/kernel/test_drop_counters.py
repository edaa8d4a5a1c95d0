"""The table's drop counters, per reason, read from a real kernel (kernel.counters).

A PBX namespace loads the compiled lab configuration with one address banned
for SSH; an Internet namespace knocks on SSH from the banned address and on
AMI (allowed to nobody on the Internet) from another. ``read_drops`` then
finds the packets under ``("jail", "ssh")`` and ``("default_deny", "")``;
the reasons come from the rate limit's chain and from what other rules
announce in their comments. The rules are read over netlink, never the sets.
"""

from __future__ import annotations

import ipaddress

from pbxfw.compiler import BanElement, compile_ruleset
from pbxfw.kernel import NftBackend
from pbxfw.kernel.counters import drops_of, read_drops

from .configs import lab_config
from .lab import Lab, Probe, require_kernel


def test_drops_are_counted_per_reason_in_a_real_table() -> None:
    require_kernel()
    with Lab("drops") as lab:
        pbx, inet = lab.namespace("pbx"), lab.namespace("inet")
        lab.link(pbx, "i0", inet, "p0")
        lab.addr(pbx, "i0", "10.77.2.1/24")
        lab.addr(inet, "p0", "10.77.2.2/24")
        lab.addr(inet, "p0", "10.77.2.3/24")
        assert read_drops(pbx) is None  # no table yet
        ban = BanElement(ipaddress.ip_network("10.77.2.2/32"), "ssh", 600)
        NftBackend(pbx).apply(compile_ruleset(lab_config(), [ban]))
        listener = lab.listen(pbx, tcp=[22, 5038])
        try:
            results = lab.probe(
                inet,
                [
                    Probe("tcp", "10.77.2.2", "10.77.2.1", 22),
                    Probe("tcp", "10.77.2.3", "10.77.2.1", 5038),
                ],
            )
        finally:
            listener.stop()
        assert set(results.values()) == {"timeout"}, results
        drops = read_drops(pbx)
        assert drops is not None
        assert drops[("jail", "ssh")][0] >= 1
        assert drops[("default_deny", "")][0] >= 1
        assert drops[("jail", "ssh")][1] >= 40 * drops[("jail", "ssh")][0]  # bytes, not packets


def test_the_reason_comes_from_the_chain_or_the_comment() -> None:
    rules = [
        ("sip_rate", "", 3, 180),
        ("bans", "jail asterisk", 4, 240),
        ("bans", "jail asterisk", 1, 60),
        ("early", "feed spamhaus", 2, 120),
        ("early", "country block", 6, 360),
        ("input", "default deny: no network allows this", 7, 420),
        ("input", "something else", 8, 480),
    ]
    assert drops_of(rules) == {
        ("rate_limit", ""): (3, 180),
        ("jail", "asterisk"): (5, 300),
        ("feed", "spamhaus"): (2, 120),
        ("country", ""): (6, 360),
        ("default_deny", ""): (7, 420),
        ("other", ""): (8, 480),
    }


def test_the_early_chains_drops_are_counted_under_their_reasons() -> None:
    """compiler.early's comments: a jail's, a country's, a feed's."""
    rules = [
        ("early_bans", "jail manual: before connection tracking", 2, 80),
        ("early_drop", "country: before connection tracking", 3, 90),
        ("early_drop", "feed spamhaus: before connection tracking", 4, 100),
    ]
    assert drops_of(rules) == {
        ("jail", "manual"): (2, 80),
        ("country", ""): (3, 90),
        ("feed", "spamhaus"): (4, 100),
    }
