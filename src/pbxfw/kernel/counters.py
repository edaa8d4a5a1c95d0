"""Packets and bytes the ``inet pbxfw`` table dropped, per reason, from its rules' counters.

Every drop rule of the compiled table carries a ``counter`` (compiler.ruleset).
The rules are read with one netlink dump of the table's rules
(``NFT_MSG_GETRULE``, as kernel.flowtag reads the flow-tag rules): no set
element is read, so it takes about a millisecond whatever the number of bans
(``nft -t list table`` still fetches every element: seconds with 100,000 bans).
The reason of a drop comes from its rule:

- comment ``jail NAME`` → ``("jail", NAME)`` (the bans chain);
- comment ``feed NAME`` → ``("feed", NAME)``; comment ``country …`` → ``("country", "")``
  (drop rules added for blocklist feeds and countries follow this convention);
- the ``sip_rate`` chain, or a comment ``rate limit …`` → ``("rate_limit", "")``;
- comment ``default deny …`` → ``("default_deny", "")``;
- any other counted drop → ``("other", "")``.

A country blocked for a service is folded into the allow sets (domain.decision),
so its packets are counted under ``default_deny``.
"""

from __future__ import annotations

from collections.abc import Iterable

from pbxfw.compiler.names import TABLE
from pbxfw.kernel import nlsock as nl
from pbxfw.kernel.flowtag import rule_comment
from pbxfw.kernel.nfconst import (
    NFNL_SUBSYS_NFTABLES,
    NFPROTO_INET,
    NFT_MSG_GETRULE,
    NFTA_DATA_VERDICT,
    NFTA_EXPR_DATA,
    NFTA_EXPR_NAME,
    NFTA_RULE_CHAIN,
    NFTA_RULE_EXPRESSIONS,
    NFTA_RULE_TABLE,
    NFTA_RULE_USERDATA,
    NFTA_VERDICT_CODE,
    NLM_F_DUMP,
    NLM_F_REQUEST,
)

__all__ = ["Drops", "RuleCounter", "drops_of", "read_drops", "reason_of"]

#: (reason, jail) → (packets, bytes)
Drops = dict[tuple[str, str], tuple[int, int]]

# include/uapi/linux/netfilter/nf_tables.h
_NFTA_COUNTER_BYTES = 1
_NFTA_COUNTER_PACKETS = 2
_NFTA_IMMEDIATE_DATA = 2
_NF_DROP = 0

#: (chain, comment, packets, bytes) of one rule that counts and drops
RuleCounter = tuple[str, str, int, int]


def reason_of(chain: str, comment: str) -> tuple[str, str]:
    """The (reason, jail) of a drop rule in ``chain`` with ``comment`` (pure)."""
    # "jail manual" in the bans chain, "jail manual: before connection
    # tracking" in the early chains (compiler.early): the name is the word
    if comment.startswith("jail "):
        return "jail", comment[5:].split(":")[0].strip()
    if comment.startswith("feed "):
        return "feed", comment[5:].split(":")[0].strip()
    if comment.startswith("country"):
        return "country", ""
    if chain == "sip_rate" or comment.startswith("rate limit"):
        return "rate_limit", ""
    if comment.startswith("default deny"):
        return "default_deny", ""
    return "other", ""


def drops_of(rules: Iterable[RuleCounter]) -> Drops:
    """The counted drops summed per (reason, jail) (pure)."""
    drops: Drops = {}
    for chain, comment, packets, octets in rules:
        key = reason_of(chain, comment)
        before = drops.get(key, (0, 0))
        drops[key] = (before[0] + packets, before[1] + octets)
    return drops


def _counted_drop(expressions: bytes) -> tuple[int, int] | None:
    """(packets, bytes) of a rule that has a counter and ends in drop, else None."""
    counted: tuple[int, int] | None = None
    drops = False
    for _kind, element in nl.walk(expressions):
        attrs = nl.attributes(element)
        name = attrs.get(NFTA_EXPR_NAME, b"").rstrip(b"\0")
        data = nl.attributes(attrs.get(NFTA_EXPR_DATA, b""))
        if name == b"counter":
            counted = (
                int(nl.BE64.unpack(data[_NFTA_COUNTER_PACKETS])[0]),
                int(nl.BE64.unpack(data[_NFTA_COUNTER_BYTES])[0]),
            )
        elif name == b"immediate" and _NFTA_IMMEDIATE_DATA in data:
            verdict = nl.attributes(data[_NFTA_IMMEDIATE_DATA]).get(NFTA_DATA_VERDICT)
            code = nl.attributes(verdict).get(NFTA_VERDICT_CODE) if verdict else None
            drops = code is not None and nl.BE32.unpack(code)[0] == _NF_DROP
    return counted if drops else None


def read_drops(netns: str | None) -> Drops | None:
    """The drops the running table counted; None when there is no table
    (one netlink dump of its rules)."""
    kind = (NFNL_SUBSYS_NFTABLES << 8) | NFT_MSG_GETRULE
    request = nl.pack_message(
        kind,
        NLM_F_REQUEST | NLM_F_DUMP,
        1,
        NFPROTO_INET,
        0,
        nl.attr(NFTA_RULE_TABLE, TABLE.encode() + b"\0"),
    )
    rules: list[RuleCounter] = []
    seen = False
    with nl.request_socket(netns, 1 << 20) as sock:
        for message in nl.dump(sock, request, absent_ok=True):
            seen = True
            attrs = nl.attributes(message, nl.HEADER)
            counted = _counted_drop(attrs.get(NFTA_RULE_EXPRESSIONS, b""))
            if counted is not None:
                chain = attrs.get(NFTA_RULE_CHAIN, b"").rstrip(b"\0").decode(errors="replace")
                comment = rule_comment(attrs.get(NFTA_RULE_USERDATA, b"")) or ""
                rules.append((chain, comment, *counted))
    if not seen:
        return None
    return drops_of(rules)
