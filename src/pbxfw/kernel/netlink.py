"""Ban elements through nf_tables netlink: no ``nft`` process, no read-back.

``nft`` 1.0.6 reads every element of every interval set of the ruleset back
from the kernel before it changes any set (to check overlaps), and parses
its text input: adding 100,000 banned addresses cost 0.5 s of nft, and one
incremental ban 65 ms once 10,000 networks are applied. The address sets
(``ban_<jail>_v4``, ``banned_v4``, …) are hashes, whose elements need no
overlap check, so their changes are sent as the netlink messages nft itself
would send: one batch (one kernel transaction) of ``NEWSETELEM`` /
``DELSETELEM`` messages, each acknowledged.

Only element messages of ``table inet pbxfw`` are ever built here; tables,
chains and rules are nft's job (``NftBackend``). Linux uapi:
``linux/netfilter/nf_tables.h``, ``linux/netfilter/nfnetlink.h``.
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

from pbxfw.compiler.nft import TABLE
from pbxfw.errors import KernelError

__all__ = ["ElementOp", "has_element", "send_element_batch"]

NETLINK_NETFILTER = 12
SOL_NETLINK = 270
NETLINK_CAP_ACK = 10
NETLINK_EXT_ACK = 11
CLONE_NEWNET = 0x40000000

NLM_F_REQUEST = 0x1
NLM_F_ACK = 0x4
NLM_F_CREATE = 0x400
NLMSG_ERROR = 2
NLA_F_NESTED = 0x8000

NFNL_SUBSYS_NFTABLES = 10
NFNL_MSG_BATCH_BEGIN = 0x10
NFNL_MSG_BATCH_END = 0x11
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

#: A nested attribute's length is 16 bits: elements go in messages of at
#: most this many bytes of elements each.
_ELEMENTS_PER_MESSAGE_BYTES = 60_000
#: How long to wait for the kernel's answers to one batch.
_ANSWER_SECONDS = 30.0

_NLMSGHDR = struct.Struct("=IHHII")
_NLATTR = struct.Struct("=HH")
_BE64 = struct.Struct(">Q")

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
        + _NLATTR.pack(4 + len(elements), NFTA_SET_ELEM_LIST_ELEMENTS | NLA_F_NESTED)
        + elements
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


def send_element_batch(ops: Sequence[ElementOp], netns: str | None = None) -> None:
    """Send ``ops`` as one nf_tables transaction, in order; wait for every answer.

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
    if not body:
        return
    expected = set(range(1, seq))
    begin = _message(
        NFNL_MSG_BATCH_BEGIN, NLM_F_REQUEST, 0, socket.AF_UNSPEC, NFNL_SUBSYS_NFTABLES, b""
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
                    f"nf_tables did not answer {len(expected)} of {seq - 1} element messages "
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
            raise KernelError(
                "nf_tables refused the ban elements: " + "; ".join(dict.fromkeys(refused))
            )


def _reason(code: int, answer: bytes) -> str:
    """errno text, plus the kernel's extended-ack message when it sent one."""
    text = f"{errno.errorcode.get(code, code)} ({os.strerror(code)})"
    # NLMSGERR_ATTR_MSG (1) follows the error struct (error + capped header).
    start = _NLMSGHDR.size + 4 + _NLMSGHDR.size
    while start + 4 <= len(answer):
        length, kind = _NLATTR.unpack_from(answer, start)
        if length < 4:
            break
        if kind & 0x7FFF == 1:
            message = answer[start + 4 : start + length].split(b"\0", 1)[0].decode(errors="replace")
            if message:
                text += f": {message}"
            break
        start += (length + 3) & ~3
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
        sock.send(request)
        found = False
        for _ in range(16):  # the element, then the ack (or just an error)
            for answer, _seq, code, message in _answers(sock.recv(65536)):
                if answer != NLMSG_ERROR:
                    found = True
                elif code in (0, errno.ENOENT):
                    return found
                else:
                    raise KernelError(f"nf_tables: {_reason(code, message)}")
        return found
