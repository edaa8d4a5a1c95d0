"""Ban elements through nf_tables netlink: no ``nft`` process, no read-back.

``nft`` 1.0.6 reads every element of every interval set of the ruleset back
from the kernel before it changes any set (to check overlaps), and parses
its text input: adding 100,000 banned addresses cost 0.5 s of nft, and one
incremental ban 65 ms once 10,000 networks are applied. The address sets
(``ban_<jail>_v4``, ``banned_v4``, …) are hashes, whose elements need no
overlap check, so their changes are sent as the netlink messages nft itself
would send: one batch (one kernel transaction) of ``NEWSETELEM`` /
``DELSETELEM`` messages, each acknowledged.

The same batch can move the flow tag (docs/nftables.md, "flow cache"): it
replaces the two rules that hold it, found by their comments, checked
against the ruleset generation they were read in, so a batch never lands on
a table someone reloaded meanwhile. ``forget_flows`` deletes the conntrack
entries carrying a tag before the tag is put in use.

Only element messages and those two rules of ``table inet pbxfw`` are ever
built here; tables, chains and other rules are nft's job (``NftBackend``).
Linux uapi: ``linux/netfilter/nf_tables.h``, ``linux/netfilter/nfnetlink.h``,
``linux/netfilter/nfnetlink_conntrack.h``.
"""

from __future__ import annotations

import ctypes
import errno
import os
import socket
import struct
import threading
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass

from pbxfw.compiler.nft import (
    FLOW_CACHE_COMMENT,
    FLOW_CHAIN,
    FLOW_MARK_COMMENT,
    FLOW_MARK_MASK,
    TABLE,
)
from pbxfw.errors import KernelError

__all__ = [
    "ElementOp",
    "FlowTagRules",
    "flow_tag_rules",
    "forget_flows",
    "has_element",
    "ruleset_generation",
    "send_element_batch",
]

NETLINK_NETFILTER = 12
SOL_NETLINK = 270
NETLINK_CAP_ACK = 10
NETLINK_EXT_ACK = 11
CLONE_NEWNET = 0x40000000

NLM_F_REQUEST = 0x1
NLM_F_MULTI = 0x2
NLM_F_ACK = 0x4
NLM_F_DUMP = 0x300
NLM_F_REPLACE = 0x100
NLM_F_CREATE = 0x400
NLMSG_ERROR = 2
NLMSG_DONE = 3
NLA_F_NESTED = 0x8000

NFNL_SUBSYS_NFTABLES = 10
NFNL_MSG_BATCH_BEGIN = 0x10
NFNL_MSG_BATCH_END = 0x11
NFT_MSG_NEWRULE = 6
NFT_MSG_GETRULE = 7
NFT_MSG_NEWGEN = 15
NFT_MSG_GETGEN = 16
NFT_MSG_NEWSETELEM = 12
NFT_MSG_GETSETELEM = 13
NFT_MSG_DELSETELEM = 14
NFPROTO_INET = 1

NFTA_SET_ELEM_LIST_TABLE = 1
NFTA_SET_ELEM_LIST_SET = 2
NFTA_SET_ELEM_LIST_ELEMENTS = 3
NFTA_LIST_ELEM = 1
NFTA_SET_ELEM_KEY = 1
NFTA_SET_ELEM_TIMEOUT = 4
NFTA_DATA_VALUE = 1
NFTA_DATA_VERDICT = 2
NFTA_VERDICT_CODE = 1
NF_ACCEPT = 1
NFNL_BATCH_GENID = 1
NFTA_GEN_ID = 1

NFTA_RULE_TABLE = 1
NFTA_RULE_CHAIN = 2
NFTA_RULE_HANDLE = 3
NFTA_RULE_EXPRESSIONS = 4
NFTA_RULE_USERDATA = 7
NFTNL_UDATA_RULE_COMMENT = 0
NFTA_EXPR_NAME = 1
NFTA_EXPR_DATA = 2
NFT_REG_VERDICT = 0
NFT_REG_1 = 1
NFT_CT_MARK = 3
NFT_CMP_EQ = 0
NFTA_CMP_DATA = 3

NFNL_SUBSYS_CTNETLINK = 1
IPCTNL_MSG_CT_DELETE = 2
CTA_MARK = 8
CTA_MARK_MASK = 21

#: A nested attribute's length is 16 bits: elements go in messages of at
#: most this many bytes of elements each.
_ELEMENTS_PER_MESSAGE_BYTES = 60_000
#: How long to wait for the kernel's answers to one batch.
_ANSWER_SECONDS = 30.0

_NLMSGHDR = struct.Struct("=IHHII")
_NLATTR = struct.Struct("=HH")
_BE64 = struct.Struct(">Q")
_BE32 = struct.Struct(">I")
_U32 = struct.Struct("=I")

_libc = ctypes.CDLL(None, use_errno=True)


@dataclass(frozen=True, slots=True)
class ElementOp:
    """Add or delete ``keys`` (packed addresses, 4 or 16 bytes) in one set.

    ``timeouts`` (milliseconds, ``None`` = no end) go with ``add``; an empty
    tuple means none of the elements has one.
    """

    action: str  # "add" | "delete"
    set_name: str
    keys: Sequence[bytes]
    timeouts: Sequence[int | None] = ()


def _attr(kind: int, payload: bytes) -> bytes:
    length = 4 + len(payload)
    return _NLATTR.pack(length, kind) + payload + b"\0" * (-length % 4)


def _nest(kind: int, *parts: bytes) -> bytes:
    payload = b"".join(parts)
    return _NLATTR.pack(4 + len(payload), kind | NLA_F_NESTED) + payload


def _element_prefix(key_size: int, timed: bool) -> bytes:
    """The attribute headers before the key of one element (they depend only
    on the key's size and whether a timeout follows)."""
    value = 4 + key_size
    key = 4 + value
    whole = 4 + key + (12 if timed else 0)
    return (
        _NLATTR.pack(whole, NFTA_LIST_ELEM | NLA_F_NESTED)
        + _NLATTR.pack(key, NFTA_SET_ELEM_KEY | NLA_F_NESTED)
        + _NLATTR.pack(value, NFTA_DATA_VALUE)
    )


_PREFIX = {
    (size, timed): _element_prefix(size, timed) for size in (4, 16) for timed in (False, True)
}
_TIMEOUT_HEAD = _NLATTR.pack(12, NFTA_SET_ELEM_TIMEOUT)


def _element(key: bytes, timeout_ms: int | None) -> bytes:
    """One NFTA_LIST_ELEM: the key (an address, 4 or 16 bytes), its timeout."""
    if timeout_ms is None:
        return _PREFIX[(len(key), False)] + key
    return _PREFIX[(len(key), True)] + key + _TIMEOUT_HEAD + _BE64.pack(timeout_ms)


def _message(kind: int, flags: int, seq: int, family: int, res_id: int, body: bytes) -> bytes:
    payload = struct.pack("=BB", family, 0) + struct.pack("!H", res_id) + body
    return _NLMSGHDR.pack(_NLMSGHDR.size + len(payload), kind, flags, seq, 0) + payload


def _set_elements_body(set_name: str, elements: bytes) -> bytes:
    """The attributes of an element message: our table, the set, the elements."""
    return (
        _attr(NFTA_SET_ELEM_LIST_TABLE, TABLE.encode() + b"\0")
        + _attr(NFTA_SET_ELEM_LIST_SET, set_name.encode() + b"\0")
        + _nest(NFTA_SET_ELEM_LIST_ELEMENTS, elements)
    )


def _element_messages(op: ElementOp, first_seq: int) -> list[bytes]:
    """``op`` as NEWSETELEM/DELSETELEM messages, each under the attribute limit."""
    if op.action not in ("add", "delete"):
        raise ValueError(f"unknown element action {op.action!r}")
    kind = (NFNL_SUBSYS_NFTABLES << 8) | (
        NFT_MSG_NEWSETELEM if op.action == "add" else NFT_MSG_DELSETELEM
    )
    flags = NLM_F_REQUEST | NLM_F_ACK | (NLM_F_CREATE if op.action == "add" else 0)
    timeouts: Iterable[int | None] = op.timeouts or [None] * len(op.keys)
    if op.action == "delete":
        timeouts = [None] * len(op.keys)
    messages: list[bytes] = []
    chunk: list[bytes] = []
    size = 0
    for key, timeout in zip(op.keys, timeouts, strict=True):
        element = _element(key, timeout)
        if size + len(element) > _ELEMENTS_PER_MESSAGE_BYTES:
            messages.append(b"".join(chunk))
            chunk, size = [], 0
        chunk.append(element)
        size += len(element)
    if chunk:
        messages.append(b"".join(chunk))
    return [
        _message(kind, flags, first_seq + i, NFPROTO_INET, 0, _set_elements_body(op.set_name, e))
        for i, e in enumerate(messages)
    ]


def _open_socket(netns: str | None) -> socket.socket:
    """A netfilter netlink socket in ``netns`` (a name under /run/netns).

    A socket stays in the namespace it was made in, so a short-lived thread
    enters the namespace (``setns`` changes only the calling thread) and
    makes it there; this process's own threads are untouched.
    """
    if netns is None:
        return socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, NETLINK_NETFILTER)
    made: list[socket.socket] = []
    failed: list[OSError] = []

    def enter_and_open() -> None:
        try:
            fd = os.open(f"/run/netns/{netns}", os.O_RDONLY | os.O_CLOEXEC)
        except OSError as exc:
            failed.append(exc)
            return
        try:
            if _libc.setns(fd, CLONE_NEWNET) != 0:
                code = ctypes.get_errno()
                failed.append(OSError(code, f"setns {netns}: {os.strerror(code)}"))
                return
            made.append(socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, NETLINK_NETFILTER))
        except OSError as exc:
            failed.append(exc)
        finally:
            os.close(fd)

    worker = threading.Thread(target=enter_and_open, name="pbxfw-netns")
    worker.start()
    worker.join()
    if failed:
        raise failed[0]
    return made[0]


def _request_socket(netns: str | None, size: int) -> socket.socket:
    """A bound socket in ``netns`` for a request of ``size`` bytes: acks
    without the request echoed, errors with the kernel's message."""
    sock = _open_socket(netns)
    try:
        sock.setsockopt(SOL_NETLINK, NETLINK_CAP_ACK, 1)
        sock.setsockopt(SOL_NETLINK, NETLINK_EXT_ACK, 1)
        # A request travels as one datagram: make room for it (root may).
        sock.setsockopt(socket.SOL_SOCKET, 32, size + 65536)  # SO_SNDBUFFORCE
        sock.bind((0, 0))
        sock.settimeout(_ANSWER_SECONDS)
    except BaseException:
        sock.close()
        raise
    return sock


def _answers(data: bytes) -> Iterator[tuple[int, int, int, bytes]]:
    """(type, sequence number, error code or 0, the whole message) of each
    netlink message in one datagram from the kernel."""
    offset = 0
    while offset + _NLMSGHDR.size <= len(data):
        length, kind, _flags, seq, _pid = _NLMSGHDR.unpack_from(data, offset)
        if length < _NLMSGHDR.size:
            return
        code = 0
        if kind == NLMSG_ERROR:
            (code,) = struct.unpack_from("=i", data, offset + _NLMSGHDR.size)
        yield kind, seq, -code, data[offset : offset + length]
        offset += (length + 3) & ~3


@dataclass(frozen=True, slots=True)
class FlowTagRules:
    """Where the flow tag lives in the running table: the handles of the
    cache rule (chain ``input``) and the marking rule (FLOW_CHAIN), the
    tag they hold, and the ruleset generation they were read in."""

    generation: int
    cache_handle: int
    mark_handle: int
    tag: int


def send_element_batch(
    ops: Sequence[ElementOp],
    netns: str | None = None,
    *,
    retag: tuple[FlowTagRules, int] | None = None,
) -> None:
    """Send ``ops`` as one nf_tables transaction, in order; wait for every answer.

    With ``retag`` = (rules, tag) the same transaction puts ``tag`` in the
    flow-tag rules, and the kernel refuses the whole batch if the ruleset
    changed since ``rules`` was read (ERESTART): the elements and the new
    tag land together or not at all.

    Raises KernelError with the kernel's reason when any message is refused
    (then nothing of the batch is applied: e.g. the set does not exist, or
    a delete of an absent element), and OSError when netlink itself cannot
    be used here (no permission, no nf_tables): callers may fall back to nft.
    """
    seq = 1
    body: list[bytes] = []
    for op in ops:
        if op.keys:
            messages = _element_messages(op, seq)
            body += messages
            seq += len(messages)
    if retag is not None:
        rules, tag = retag
        body.append(_replace_rule("input", rules.cache_handle, _cache_rule(tag), seq))
        body.append(_replace_rule(FLOW_CHAIN, rules.mark_handle, _mark_rule(tag), seq + 1))
        seq += 2
    if not body:
        return
    expected = set(range(1, seq))
    genid = b"" if retag is None else _attr(NFNL_BATCH_GENID, _BE32.pack(retag[0].generation))
    begin = _message(
        NFNL_MSG_BATCH_BEGIN, NLM_F_REQUEST, 0, socket.AF_UNSPEC, NFNL_SUBSYS_NFTABLES, genid
    )
    end = _message(
        NFNL_MSG_BATCH_END, NLM_F_REQUEST, seq, socket.AF_UNSPEC, NFNL_SUBSYS_NFTABLES, b""
    )
    batch = b"".join([begin, *body, end])
    with _request_socket(netns, len(batch)) as sock:
        sock.send(batch)
        refused: list[str] = []
        while expected:
            try:
                data = sock.recv(1 << 20)
            except TimeoutError:
                raise KernelError(
                    f"nf_tables did not answer {len(expected)} of {seq - 1} messages "
                    f"in {_ANSWER_SECONDS:.0f}s"
                ) from None
            for kind, answer_seq, code, message in _answers(data):
                if kind != NLMSG_ERROR:
                    continue
                if code:
                    refused.append(_reason(code, message))
                expected.discard(answer_seq)
                if answer_seq in (0, seq):  # the batch's begin or end itself
                    expected.clear()
        if refused:
            why = "; ".join(dict.fromkeys(refused))
            if retag is not None and "ERESTART" in why:
                why = "the ruleset changed since the flow-tag rules were read"
            raise KernelError(f"nf_tables refused the ban elements: {why}")


# -- the flow tag ------------------------------------------------------------
def _be32(kind: int, value: int) -> bytes:
    return _attr(kind, _BE32.pack(value))


def _expression(name: str, *attrs: bytes) -> bytes:
    return _nest(
        NFTA_LIST_ELEM, _attr(NFTA_EXPR_NAME, name.encode() + b"\0"), _nest(NFTA_EXPR_DATA, *attrs)
    )


def _mark_value(kind: int, value: int) -> bytes:
    # ct mark is a host-order u32 in the registers (nft sends it that way).
    return _nest(kind, _attr(NFTA_DATA_VALUE, _U32.pack(value)))


# Attribute numbers of the ct (1 DREG, 2 KEY, 4 SREG), bitwise (1 SREG,
# 2 DREG, 3 LEN, 4 MASK, 5 XOR), cmp (1 SREG, 2 OP, 3 DATA) and immediate
# (1 DREG, 2 DATA) expressions.
_CT_MARK_LOAD = _expression("ct", _be32(1, NFT_REG_1), _be32(2, NFT_CT_MARK))
_CT_MARK_STORE = _expression("ct", _be32(2, NFT_CT_MARK), _be32(4, NFT_REG_1))
_ACCEPT = _expression(
    "immediate",
    _be32(1, NFT_REG_VERDICT),
    _nest(2, _nest(NFTA_DATA_VERDICT, _be32(NFTA_VERDICT_CODE, NF_ACCEPT))),
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


def _cache_rule(tag: int) -> tuple[bytes, str]:
    """``flow_cache_rule(tag)`` as expressions: ct mark & MASK == tag: accept."""
    cmp = _expression(
        "cmp", _be32(1, NFT_REG_1), _be32(2, NFT_CMP_EQ), _mark_value(NFTA_CMP_DATA, tag)
    )
    return _CT_MARK_LOAD + _bitwise(FLOW_MARK_MASK, 0) + cmp + _ACCEPT, FLOW_CACHE_COMMENT


def _mark_rule(tag: int) -> tuple[bytes, str]:
    """``flow_mark_rule(tag)``: ct mark = (ct mark & ~MASK) ^ tag; accept."""
    keep = ~FLOW_MARK_MASK & 0xFFFFFFFF
    return _CT_MARK_LOAD + _bitwise(keep, tag) + _CT_MARK_STORE + _ACCEPT, FLOW_MARK_COMMENT


def _replace_rule(chain: str, handle: int, rule: tuple[bytes, str], seq: int) -> bytes:
    expressions, comment = rule
    userdata = bytes([NFTNL_UDATA_RULE_COMMENT, len(comment) + 1]) + comment.encode() + b"\0"
    body = (
        _attr(NFTA_RULE_TABLE, TABLE.encode() + b"\0")
        + _attr(NFTA_RULE_CHAIN, chain.encode() + b"\0")
        + _attr(NFTA_RULE_HANDLE, _BE64.pack(handle))
        + _nest(NFTA_RULE_EXPRESSIONS, expressions)
        + _attr(NFTA_RULE_USERDATA, userdata)
    )
    kind = (NFNL_SUBSYS_NFTABLES << 8) | NFT_MSG_NEWRULE
    return _message(kind, NLM_F_REQUEST | NLM_F_ACK | NLM_F_REPLACE, seq, NFPROTO_INET, 0, body)


def _walk(data: bytes, start: int = 0) -> Iterator[tuple[int, bytes]]:
    """(type without flags, payload) of each attribute in ``data[start:]``."""
    while start + 4 <= len(data):
        length, kind = _NLATTR.unpack_from(data, start)
        if length < 4:
            return
        yield kind & 0x3FFF, data[start + 4 : start + length]
        start += (length + 3) & ~3


def _attributes(data: bytes, start: int = 0) -> dict[int, bytes]:
    return dict(_walk(data, start))


def _comment(userdata: bytes) -> str | None:
    """The comment in a rule's user data (nftnl TLVs: type, length, value)."""
    at = 0
    while at + 2 <= len(userdata):
        kind, length = userdata[at], userdata[at + 1]
        if kind == NFTNL_UDATA_RULE_COMMENT:
            return userdata[at + 2 : at + 2 + length].rstrip(b"\0").decode(errors="replace")
        at += 2 + length
    return None


def _dump(sock: socket.socket, request: bytes, *, absent_ok: bool = False) -> Iterator[bytes]:
    """Every answer message of one request, up to its ack or NLMSG_DONE.
    An error answer raises KernelError; ENOENT (no such table, set or
    element) just ends the answers when ``absent_ok``."""
    sock.send(request)
    for _ in range(100_000):  # bounded: a dump of our table is a few messages
        for kind, _seq, code, message in _answers(sock.recv(1 << 20)):
            if kind == NLMSG_DONE:
                return
            if kind == NLMSG_ERROR:
                if code and not (absent_ok and code == errno.ENOENT):
                    raise KernelError(f"nf_tables: {_reason(code, message)}")
                return
            yield message
    raise KernelError("nf_tables: a dump did not end")


_HEADER = _NLMSGHDR.size + 4  # netlink header, nfgenmsg


def _generation(sock: socket.socket) -> int:
    kind = (NFNL_SUBSYS_NFTABLES << 8) | NFT_MSG_GETGEN
    request = _message(kind, NLM_F_REQUEST | NLM_F_ACK, 1, socket.AF_UNSPEC, 0, b"")
    generation = None
    for message in _dump(sock, request):
        value = _attributes(message, _HEADER).get(NFTA_GEN_ID)
        if value is not None:
            generation = int(_BE32.unpack(value)[0])
    if generation is None:
        raise KernelError("nf_tables did not tell its ruleset generation")
    return generation


def ruleset_generation(netns: str | None = None) -> int:
    """The nf_tables ruleset generation now: every committed change of any
    table moves it on."""
    with _request_socket(netns, 4096) as sock:
        return _generation(sock)


def flow_tag_rules(netns: str | None = None) -> FlowTagRules | None:
    """Where the running table keeps its flow tag; None when it has no flow
    cache (no table, or ``firewall_enabled`` false: nothing is cached)."""
    rule_kind = (NFNL_SUBSYS_NFTABLES << 8) | NFT_MSG_GETRULE
    with _request_socket(netns, 4096) as sock:
        generation = _generation(sock)
        request = _message(
            rule_kind,
            NLM_F_REQUEST | NLM_F_DUMP,
            2,
            NFPROTO_INET,
            0,
            _attr(NFTA_RULE_TABLE, TABLE.encode() + b"\0"),
        )
        handles: dict[str, tuple[int, bytes]] = {}
        for message in _dump(sock, request, absent_ok=True):
            attrs = _attributes(message, _HEADER)
            comment = _comment(attrs.get(NFTA_RULE_USERDATA, b""))
            if comment in (FLOW_CACHE_COMMENT, FLOW_MARK_COMMENT) and NFTA_RULE_HANDLE in attrs:
                handles[comment] = (
                    _BE64.unpack(attrs[NFTA_RULE_HANDLE])[0],
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
    for _kind, element in _walk(expressions):
        attrs = _attributes(element)
        if attrs.get(NFTA_EXPR_NAME, b"").rstrip(b"\0") == b"cmp":
            data = _attributes(attrs[NFTA_EXPR_DATA])
            value = _attributes(data[NFTA_CMP_DATA])[NFTA_DATA_VALUE]
            return int(_U32.unpack(value)[0])
    raise KernelError("the flow cache rule has no comparison")


def forget_flows(tag: int, netns: str | None = None) -> None:
    """Delete the conntrack entries whose flow-tag bits equal ``tag``: done
    before ``tag`` is put in use, so no flow decided under an older policy
    or older bans can carry it. One request; the kernel walks its table.
    Raises OSError (netlink unusable) or KernelError (refused)."""
    kind = (NFNL_SUBSYS_CTNETLINK << 8) | IPCTNL_MSG_CT_DELETE
    body = _be32(CTA_MARK, tag) + _be32(CTA_MARK_MASK, FLOW_MARK_MASK)
    request = _message(kind, NLM_F_REQUEST | NLM_F_ACK, 1, socket.AF_UNSPEC, 0, body)
    with _request_socket(netns, len(request)) as sock:
        list(_dump(sock, request))  # the ack, or the kernel's refusal


def _reason(code: int, answer: bytes) -> str:
    """errno text, plus the kernel's extended-ack message when it sent one."""
    text = f"{errno.errorcode.get(code, code)} ({os.strerror(code)})"
    # NLMSGERR_ATTR_MSG (1) follows the error struct (error + capped header).
    for kind, payload in _walk(answer, _NLMSGHDR.size + 4 + _NLMSGHDR.size):
        if kind == 1:
            message = payload.split(b"\0", 1)[0].decode(errors="replace")
            if message:
                text += f": {message}"
            break
    return text


def has_element(set_name: str, key: bytes, netns: str | None = None) -> bool:
    """Does the kernel's set ``set_name`` of ``table inet pbxfw`` hold ``key``
    (a packed address) now? One lookup in the kernel, nothing read back:
    what tests and benchmarks poll while waiting for a ban to land. False
    also when the set or the table does not exist (the kernel answers ENOENT
    for all three)."""
    kind = (NFNL_SUBSYS_NFTABLES << 8) | NFT_MSG_GETSETELEM
    body = _set_elements_body(set_name, _element(key, None))
    request = _message(kind, NLM_F_REQUEST | NLM_F_ACK, 1, NFPROTO_INET, 0, body)
    with _request_socket(netns, len(request)) as sock:
        # The element, then the ack; or just ENOENT.
        return bool(list(_dump(sock, request, absent_ok=True)))
