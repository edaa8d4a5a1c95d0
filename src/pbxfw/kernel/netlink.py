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

Split along the protocol: constants in :mod:`pbxfw.kernel.nfconst`, sockets
and messages in :mod:`pbxfw.kernel.nlsock`, the flow tag's rules in
:mod:`pbxfw.kernel.flowtag`; the names below stay importable from here.
"""

from __future__ import annotations

import socket
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from pbxfw.compiler.nft import FLOW_CHAIN, TABLE, SetElements
from pbxfw.errors import KernelError
from pbxfw.kernel import nlsock as nl
from pbxfw.kernel.flowtag import (
    FlowTagRules,
    cache_rule,
    flow_tag_rules,
    forget_flows,
    mark_rule,
    replace_rule,
    ruleset_generation,
)
from pbxfw.kernel.nfconst import (
    NFNL_BATCH_GENID,
    NFNL_MSG_BATCH_BEGIN,
    NFNL_MSG_BATCH_END,
    NFNL_SUBSYS_NFTABLES,
    NFPROTO_INET,
    NFT_MSG_DELSETELEM,
    NFT_MSG_GETSETELEM,
    NFT_MSG_NEWSETELEM,
    NFTA_DATA_VALUE,
    NFTA_LIST_ELEM,
    NFTA_SET_ELEM_KEY,
    NFTA_SET_ELEM_LIST_ELEMENTS,
    NFTA_SET_ELEM_LIST_SET,
    NFTA_SET_ELEM_LIST_TABLE,
    NFTA_SET_ELEM_TIMEOUT,
    NLA_F_NESTED,
    NLM_F_ACK,
    NLM_F_CREATE,
    NLM_F_REQUEST,
    NLMSG_ERROR,
)

__all__ = [
    "ElementOp",
    "FlowTagRules",
    "element_ops",
    "flow_tag_rules",
    "forget_flows",
    "has_element",
    "ruleset_generation",
    "send_element_batch",
]

#: A nested attribute's length is 16 bits: elements go in messages of at
#: most this many bytes of elements each.
_ELEMENTS_PER_MESSAGE_BYTES = 60_000


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


def _element_prefix(key_size: int, timed: bool) -> bytes:
    """The attribute headers before the key of one element (they depend only
    on the key's size and whether a timeout follows)."""
    value = 4 + key_size
    key = 4 + value
    whole = 4 + key + (12 if timed else 0)
    return (
        nl.NLATTR.pack(whole, NFTA_LIST_ELEM | NLA_F_NESTED)
        + nl.NLATTR.pack(key, NFTA_SET_ELEM_KEY | NLA_F_NESTED)
        + nl.NLATTR.pack(value, NFTA_DATA_VALUE)
    )


_PREFIX = {
    (size, timed): _element_prefix(size, timed) for size in (4, 16) for timed in (False, True)
}
_TIMEOUT_HEAD = nl.NLATTR.pack(12, NFTA_SET_ELEM_TIMEOUT)


def _element(key: bytes, timeout_ms: int | None) -> bytes:
    """One NFTA_LIST_ELEM: the key (an address, 4 or 16 bytes), its timeout."""
    if timeout_ms is None:
        return _PREFIX[(len(key), False)] + key
    return _PREFIX[(len(key), True)] + key + _TIMEOUT_HEAD + nl.BE64.pack(timeout_ms)


def _set_elements_body(set_name: str, elements: bytes) -> bytes:
    """The attributes of an element message: our table, the set, the elements."""
    return (
        nl.attr(NFTA_SET_ELEM_LIST_TABLE, TABLE.encode() + b"\0")
        + nl.attr(NFTA_SET_ELEM_LIST_SET, set_name.encode() + b"\0")
        + nl.nest(NFTA_SET_ELEM_LIST_ELEMENTS, elements)
    )


def _element_chunks(op: ElementOp) -> list[bytes]:
    """The elements of ``op``, cut into pieces under the attribute limit
    (the NFTA_SET_ELEM_LIST_ELEMENTS of one message each)."""
    timeouts: Sequence[int | None] = op.timeouts or [None] * len(op.keys)
    if op.action == "delete":
        timeouts = [None] * len(op.keys)
    # The hot loop of a bulk import (200,000 elements with the guards): the
    # elements built in one comprehension (what ``_element`` gives), then cut
    # into messages by count when they all have one size (they usually do:
    # one family, all with a timeout or none).
    pack, head = nl.BE64.pack, _TIMEOUT_HEAD
    elements = [
        _PREFIX[(len(key), False)] + key
        if timeout is None
        else _PREFIX[(len(key), True)] + key + head + pack(timeout)
        for key, timeout in zip(op.keys, timeouts, strict=True)
    ]
    sizes = {len(e) for e in elements}
    if len(sizes) == 1:
        per = _ELEMENTS_PER_MESSAGE_BYTES // sizes.pop()
        return [b"".join(elements[i : i + per]) for i in range(0, len(elements), per)]
    chunks: list[bytes] = []
    chunk: list[bytes] = []
    size = 0
    for element in elements:
        if size + len(element) > _ELEMENTS_PER_MESSAGE_BYTES:
            chunks.append(b"".join(chunk))
            chunk, size = [], 0
        chunk.append(element)
        size += len(element)
    if chunk:
        chunks.append(b"".join(chunk))
    return chunks


def _element_messages(op: ElementOp, first_seq: int, chunks: list[bytes]) -> list[bytes]:
    """``op``, whose elements are ``chunks``, as NEWSETELEM/DELSETELEM messages."""
    if op.action not in ("add", "delete"):
        raise ValueError(f"unknown element action {op.action!r}")
    kind = (NFNL_SUBSYS_NFTABLES << 8) | (
        NFT_MSG_NEWSETELEM if op.action == "add" else NFT_MSG_DELSETELEM
    )
    flags = NLM_F_REQUEST | NLM_F_ACK | (NLM_F_CREATE if op.action == "add" else 0)
    return [
        nl.pack_message(
            kind, flags, first_seq + i, NFPROTO_INET, 0, _set_elements_body(op.set_name, e)
        )
        for i, e in enumerate(chunks)
    ]


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
    # A guard set takes the very elements of its jail's set (element_ops
    # gives both the same lists): encoded once.
    encoded: dict[tuple[int, int, bool], list[bytes]] = {}
    for op in ops:
        if op.keys:
            same = (id(op.keys), id(op.timeouts), op.action == "delete")
            chunks = encoded.get(same)
            if chunks is None:
                chunks = encoded[same] = _element_chunks(op)
            messages = _element_messages(op, seq, chunks)
            body += messages
            seq += len(messages)
    if retag is not None:
        rules, tag = retag
        body.append(replace_rule("input", rules.cache_handle, cache_rule(tag), seq))
        body.append(replace_rule(FLOW_CHAIN, rules.mark_handle, mark_rule(tag), seq + 1))
        seq += 2
    if not body:
        return
    expected = set(range(1, seq))
    genid = b"" if retag is None else nl.attr(NFNL_BATCH_GENID, nl.BE32.pack(retag[0].generation))
    begin = nl.pack_message(
        NFNL_MSG_BATCH_BEGIN, NLM_F_REQUEST, 0, socket.AF_UNSPEC, NFNL_SUBSYS_NFTABLES, genid
    )
    end = nl.pack_message(
        NFNL_MSG_BATCH_END, NLM_F_REQUEST, seq, socket.AF_UNSPEC, NFNL_SUBSYS_NFTABLES, b""
    )
    batch = b"".join([begin, *body, end])
    with nl.request_socket(netns, len(batch)) as sock:
        sock.send(batch)
        refused: list[str] = []
        while expected:
            try:
                data = sock.recv(1 << 20)
            except TimeoutError:
                raise KernelError(
                    f"nf_tables did not answer {len(expected)} of {seq - 1} messages "
                    f"in {nl.ANSWER_SECONDS:.0f}s"
                ) from None
            for kind, answer_seq, code, message in nl.answers(data):
                if kind != NLMSG_ERROR:
                    continue
                if code:
                    refused.append(nl.reason(code, message))
                expected.discard(answer_seq)
                if answer_seq in (0, seq):  # the batch's begin or end itself
                    expected.clear()
        if refused:
            why = "; ".join(dict.fromkeys(refused))
            if retag is not None and "ERESTART" in why:
                why = "the ruleset changed since the flow-tag rules were read"
            raise KernelError(f"nf_tables refused the ban elements: {why}")


def has_element(set_name: str, key: bytes, netns: str | None = None) -> bool:
    """Does the kernel's set ``set_name`` of ``table inet pbxfw`` hold ``key``
    (a packed address) now? One lookup in the kernel, nothing read back:
    what tests and benchmarks poll while waiting for a ban to land. False
    also when the set or the table does not exist (the kernel answers ENOENT
    for all three)."""
    kind = (NFNL_SUBSYS_NFTABLES << 8) | NFT_MSG_GETSETELEM
    body = _set_elements_body(set_name, _element(key, None))
    request = nl.pack_message(kind, NLM_F_REQUEST | NLM_F_ACK, 1, NFPROTO_INET, 0, body)
    with nl.request_socket(netns, len(request)) as sock:
        # The element, then the ack; or just ENOENT.
        return bool(list(nl.dump(sock, request, absent_ok=True)))


def element_ops(
    plans: Sequence[tuple[SetElements, Literal["add", "delete"], bool]],
) -> list[ElementOp]:
    """The netlink steps of ``set_commands`` for each (plan, action,
    refresh), for sets of single addresses. Plans with the very same spans
    (a jail's set and its guard: compiler.elements ``as_guard_plans``) get
    the very same key and timeout lists, which send_element_batch encodes
    once."""
    ops: list[ElementOp] = []
    made: dict[int, tuple[list[bytes], list[int | None]]] = {}
    for plan, action, refresh in plans:
        lists = made.get(id(plan.spans))
        if lists is None:
            size = 4 if plan.version == 4 else 16
            lists = made[id(plan.spans)] = (
                [first.to_bytes(size, "big") for first, _, _ in plan.spans],
                [None if ttl is None else ttl * 1000 for _, _, ttl in plan.spans],
            )
        keys, timeouts = lists
        if action == "delete" or refresh:
            ops.append(ElementOp("add", plan.set_name, keys))
            ops.append(ElementOp("delete", plan.set_name, keys))
        if action == "add":
            ops.append(ElementOp("add", plan.set_name, keys, timeouts))
    return ops
