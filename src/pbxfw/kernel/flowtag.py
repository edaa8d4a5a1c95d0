"""The flow tag's two rules over netlink (docs/nftables.md, "flow cache"):
found by their comments with the ruleset generation they were read in, and
rebuilt with a new tag (the messages :func:`~pbxfw.kernel.netlink.send_element_batch`
puts in its batch); the conntrack entries carrying a tag deleted before the
tag is put in use. The text side too: the two rules found in a ruleset's
text (:data:`TAG_RULES`), a tag blanked for comparisons, a fresh random tag."""

from __future__ import annotations

import re
import secrets
import socket
from dataclasses import dataclass

from pbxfw.compiler.nft import (
    FLOW_CACHE_COMMENT,
    FLOW_MARK_COMMENT,
    FLOW_MARK_MASK,
    TABLE,
)
from pbxfw.errors import KernelError
from pbxfw.kernel import nlsock as nl
from pbxfw.kernel.nfconst import (
    CTA_MARK,
    CTA_MARK_MASK,
    IPCTNL_MSG_CT_DELETE,
    NF_ACCEPT,
    NFNL_SUBSYS_CTNETLINK,
    NFNL_SUBSYS_NFTABLES,
    NFPROTO_INET,
    NFT_CMP_EQ,
    NFT_CT_MARK,
    NFT_MSG_GETRULE,
    NFT_MSG_NEWRULE,
    NFT_REG_1,
    NFT_REG_VERDICT,
    NFTA_CMP_DATA,
    NFTA_DATA_VALUE,
    NFTA_DATA_VERDICT,
    NFTA_EXPR_DATA,
    NFTA_EXPR_NAME,
    NFTA_LIST_ELEM,
    NFTA_RULE_CHAIN,
    NFTA_RULE_EXPRESSIONS,
    NFTA_RULE_HANDLE,
    NFTA_RULE_TABLE,
    NFTA_RULE_USERDATA,
    NFTA_VERDICT_CODE,
    NFTNL_UDATA_RULE_COMMENT,
    NLM_F_ACK,
    NLM_F_DUMP,
    NLM_F_REPLACE,
    NLM_F_REQUEST,
)

__all__ = [
    "TAG_RULES",
    "FlowTagRules",
    "cache_rule",
    "flow_tag_rules",
    "forget_flows",
    "mark_rule",
    "random_flow_tag",
    "replace_rule",
    "rule_comment",
    "ruleset_generation",
    "without_flow_tag",
]


# The two rules holding the flow tag, as the compiler writes them or as nft
# lists them back (a snapshot being restored).
TAG_RULES = {
    comment: re.compile(rf'^(\s*)ct mark .*comment "{re.escape(comment)}"\s*$', re.MULTILINE)
    for comment in (FLOW_CACHE_COMMENT, FLOW_MARK_COMMENT)
}
TAG_NUMBER = re.compile(r"0x[0-9a-f]{8}")


def without_flow_tag(text: str) -> str:
    """``text`` (a listing or a compiled table) with the flow tag's value
    blanked: two tables that differ only by their tag are the same policy."""
    for pattern in TAG_RULES.values():
        text = pattern.sub(lambda m: TAG_NUMBER.sub("0xTAG", m.group(0)), text)
    return text


def random_flow_tag() -> int:
    """A flow tag: random non-zero bits of FLOW_MARK_MASK."""
    return (secrets.randbelow(0xFFFF) + 1) << 16


@dataclass(frozen=True, slots=True)
class FlowTagRules:
    """Where the flow tag lives in the running table: the handles of the
    cache rule (chain ``input``) and the marking rule (FLOW_CHAIN), the
    tag they hold, and the ruleset generation they were read in."""

    generation: int
    cache_handle: int
    mark_handle: int
    tag: int


def _be32(kind: int, value: int) -> bytes:
    return nl.attr(kind, nl.BE32.pack(value))


def _expression(name: str, *attrs: bytes) -> bytes:
    return nl.nest(
        NFTA_LIST_ELEM,
        nl.attr(NFTA_EXPR_NAME, name.encode() + b"\0"),
        nl.nest(NFTA_EXPR_DATA, *attrs),
    )


def _mark_value(kind: int, value: int) -> bytes:
    # ct mark is a host-order u32 in the registers (nft sends it that way).
    return nl.nest(kind, nl.attr(NFTA_DATA_VALUE, nl.U32.pack(value)))


# Attribute numbers of the ct (1 DREG, 2 KEY, 4 SREG), bitwise (1 SREG,
# 2 DREG, 3 LEN, 4 MASK, 5 XOR), cmp (1 SREG, 2 OP, 3 DATA) and immediate
# (1 DREG, 2 DATA) expressions.
_CT_MARK_LOAD = _expression("ct", _be32(1, NFT_REG_1), _be32(2, NFT_CT_MARK))
_CT_MARK_STORE = _expression("ct", _be32(2, NFT_CT_MARK), _be32(4, NFT_REG_1))
_ACCEPT = _expression(
    "immediate",
    _be32(1, NFT_REG_VERDICT),
    nl.nest(2, nl.nest(NFTA_DATA_VERDICT, _be32(NFTA_VERDICT_CODE, NF_ACCEPT))),
)


def _bitwise(mask: int, xor: int) -> bytes:
    return _expression(
        "bitwise",
        _be32(1, NFT_REG_1),
        _be32(2, NFT_REG_1),
        _be32(3, 4),
        _mark_value(4, mask),
        _mark_value(5, xor),
    )


def cache_rule(tag: int) -> tuple[bytes, str]:
    """``flow_cache_rule(tag)`` as expressions: ct mark & MASK == tag: accept."""
    cmp = _expression(
        "cmp", _be32(1, NFT_REG_1), _be32(2, NFT_CMP_EQ), _mark_value(NFTA_CMP_DATA, tag)
    )
    return _CT_MARK_LOAD + _bitwise(FLOW_MARK_MASK, 0) + cmp + _ACCEPT, FLOW_CACHE_COMMENT


def mark_rule(tag: int) -> tuple[bytes, str]:
    """``flow_mark_rule(tag)``: ct mark = (ct mark & ~MASK) ^ tag; accept."""
    keep = ~FLOW_MARK_MASK & 0xFFFFFFFF
    return _CT_MARK_LOAD + _bitwise(keep, tag) + _CT_MARK_STORE + _ACCEPT, FLOW_MARK_COMMENT


def replace_rule(chain: str, handle: int, rule: tuple[bytes, str], seq: int) -> bytes:
    expressions, comment = rule
    userdata = bytes([NFTNL_UDATA_RULE_COMMENT, len(comment) + 1]) + comment.encode() + b"\0"
    body = (
        nl.attr(NFTA_RULE_TABLE, TABLE.encode() + b"\0")
        + nl.attr(NFTA_RULE_CHAIN, chain.encode() + b"\0")
        + nl.attr(NFTA_RULE_HANDLE, nl.BE64.pack(handle))
        + nl.nest(NFTA_RULE_EXPRESSIONS, expressions)
        + nl.attr(NFTA_RULE_USERDATA, userdata)
    )
    kind = (NFNL_SUBSYS_NFTABLES << 8) | NFT_MSG_NEWRULE
    return nl.pack_message(
        kind, NLM_F_REQUEST | NLM_F_ACK | NLM_F_REPLACE, seq, NFPROTO_INET, 0, body
    )


def rule_comment(userdata: bytes) -> str | None:
    """The comment in a rule's user data (nftnl TLVs: type, length, value);
    None without one (kernel.counters reads its drop rules' reasons with it)."""
    at = 0
    while at + 2 <= len(userdata):
        kind, length = userdata[at], userdata[at + 1]
        if kind == NFTNL_UDATA_RULE_COMMENT:
            return userdata[at + 2 : at + 2 + length].rstrip(b"\0").decode(errors="replace")
        at += 2 + length
    return None


def ruleset_generation(netns: str | None = None) -> int:
    """The nf_tables ruleset generation now: every committed change of any
    table moves it on."""
    with nl.request_socket(netns, 4096) as sock:
        return nl.read_generation(sock)


def flow_tag_rules(netns: str | None = None) -> FlowTagRules | None:
    """Where the running table keeps its flow tag; None when it has no flow
    cache (no table, or ``firewall_enabled`` false: nothing is cached)."""
    rule_kind = (NFNL_SUBSYS_NFTABLES << 8) | NFT_MSG_GETRULE
    with nl.request_socket(netns, 4096) as sock:
        generation = nl.read_generation(sock)
        request = nl.pack_message(
            rule_kind,
            NLM_F_REQUEST | NLM_F_DUMP,
            2,
            NFPROTO_INET,
            0,
            nl.attr(NFTA_RULE_TABLE, TABLE.encode() + b"\0"),
        )
        handles: dict[str, tuple[int, bytes]] = {}
        for message in nl.dump(sock, request, absent_ok=True):
            attrs = nl.attributes(message, nl.HEADER)
            comment = rule_comment(attrs.get(NFTA_RULE_USERDATA, b""))
            if comment in (FLOW_CACHE_COMMENT, FLOW_MARK_COMMENT) and NFTA_RULE_HANDLE in attrs:
                handles[comment] = (
                    nl.BE64.unpack(attrs[NFTA_RULE_HANDLE])[0],
                    attrs.get(NFTA_RULE_EXPRESSIONS, b""),
                )
    if len(handles) != 2:
        return None
    cache_handle, expressions = handles[FLOW_CACHE_COMMENT]
    return FlowTagRules(
        generation, cache_handle, handles[FLOW_MARK_COMMENT][0], _tag_of(expressions)
    )


def _tag_of(expressions: bytes) -> int:
    """The value the cache rule's ``cmp`` compares with: the tag in use."""
    for _kind, element in nl.walk(expressions):
        attrs = nl.attributes(element)
        if attrs.get(NFTA_EXPR_NAME, b"").rstrip(b"\0") == b"cmp":
            data = nl.attributes(attrs[NFTA_EXPR_DATA])
            value = nl.attributes(data[NFTA_CMP_DATA])[NFTA_DATA_VALUE]
            return int(nl.U32.unpack(value)[0])
    raise KernelError("the flow cache rule has no comparison")


def forget_flows(tag: int, netns: str | None = None) -> None:
    """Delete the conntrack entries whose flow-tag bits equal ``tag``: done
    before ``tag`` is put in use, so no flow decided under an older policy
    or older bans can carry it. One request; the kernel walks its table.
    Raises OSError (netlink unusable) or KernelError (refused)."""
    kind = (NFNL_SUBSYS_CTNETLINK << 8) | IPCTNL_MSG_CT_DELETE
    body = _be32(CTA_MARK, tag) + _be32(CTA_MARK_MASK, FLOW_MARK_MASK)
    request = nl.pack_message(kind, NLM_F_REQUEST | NLM_F_ACK, 1, socket.AF_UNSPEC, 0, body)
    with nl.request_socket(netns, len(request)) as sock:
        list(nl.dump(sock, request))  # the ack, or the kernel's refusal
