"""Netlink plumbing for :mod:`pbxfw.kernel.netlink`: attributes and messages
packed and walked, a netfilter socket made inside a network namespace, the
kernel's answers read (acks, errors with the kernel's extended-ack text,
dumps up to their end), the ruleset generation.
"""

from __future__ import annotations

import ctypes
import errno
import os
import socket
import struct
import threading
from collections.abc import Iterator

from pbxfw.errors import KernelError
from pbxfw.kernel.nfconst import (
    CLONE_NEWNET,
    NETLINK_CAP_ACK,
    NETLINK_EXT_ACK,
    NETLINK_NETFILTER,
    NFNL_SUBSYS_NFTABLES,
    NFT_MSG_GETGEN,
    NFTA_GEN_ID,
    NLA_F_NESTED,
    NLM_F_ACK,
    NLM_F_REQUEST,
    NLMSG_DONE,
    NLMSG_ERROR,
    SOL_NETLINK,
)

__all__ = [
    "ANSWER_SECONDS",
    "BE32",
    "BE64",
    "HEADER",
    "NLATTR",
    "NLMSGHDR",
    "U32",
    "answers",
    "attr",
    "attributes",
    "dump",
    "nest",
    "open_socket",
    "pack_message",
    "read_generation",
    "reason",
    "request_socket",
    "walk",
]

#: How long to wait for the kernel's answers to one batch.
ANSWER_SECONDS = 30.0

NLMSGHDR = struct.Struct("=IHHII")
NLATTR = struct.Struct("=HH")
BE64 = struct.Struct(">Q")
BE32 = struct.Struct(">I")
U32 = struct.Struct("=I")

_libc = ctypes.CDLL(None, use_errno=True)


def attr(kind: int, payload: bytes) -> bytes:
    length = 4 + len(payload)
    return NLATTR.pack(length, kind) + payload + b"\0" * (-length % 4)


def nest(kind: int, *parts: bytes) -> bytes:
    payload = b"".join(parts)
    return NLATTR.pack(4 + len(payload), kind | NLA_F_NESTED) + payload


def pack_message(kind: int, flags: int, seq: int, family: int, res_id: int, body: bytes) -> bytes:
    payload = struct.pack("=BB", family, 0) + struct.pack("!H", res_id) + body
    return NLMSGHDR.pack(NLMSGHDR.size + len(payload), kind, flags, seq, 0) + payload


def open_socket(netns: str | None) -> socket.socket:
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


def request_socket(netns: str | None, size: int) -> socket.socket:
    """A bound socket in ``netns`` for a request of ``size`` bytes: acks
    without the request echoed, errors with the kernel's message."""
    sock = open_socket(netns)
    try:
        sock.setsockopt(SOL_NETLINK, NETLINK_CAP_ACK, 1)
        sock.setsockopt(SOL_NETLINK, NETLINK_EXT_ACK, 1)
        # A request travels as one datagram: make room for it (root may).
        sock.setsockopt(socket.SOL_SOCKET, 32, size + 65536)  # SO_SNDBUFFORCE
        sock.bind((0, 0))
        sock.settimeout(ANSWER_SECONDS)
    except BaseException:
        sock.close()
        raise
    return sock


def answers(data: bytes) -> Iterator[tuple[int, int, int, bytes]]:
    """(type, sequence number, error code or 0, the whole message) of each
    netlink message in one datagram from the kernel."""
    offset = 0
    while offset + NLMSGHDR.size <= len(data):
        length, kind, _flags, seq, _pid = NLMSGHDR.unpack_from(data, offset)
        if length < NLMSGHDR.size:
            return
        code = 0
        if kind == NLMSG_ERROR:
            (code,) = struct.unpack_from("=i", data, offset + NLMSGHDR.size)
        yield kind, seq, -code, data[offset : offset + length]
        offset += (length + 3) & ~3


def walk(data: bytes, start: int = 0) -> Iterator[tuple[int, bytes]]:
    """(type without flags, payload) of each attribute in ``data[start:]``."""
    while start + 4 <= len(data):
        length, kind = NLATTR.unpack_from(data, start)
        if length < 4:
            return
        yield kind & 0x3FFF, data[start + 4 : start + length]
        start += (length + 3) & ~3


def attributes(data: bytes, start: int = 0) -> dict[int, bytes]:
    return dict(walk(data, start))


def dump(sock: socket.socket, request: bytes, *, absent_ok: bool = False) -> Iterator[bytes]:
    """Every answer message of one request, up to its ack or NLMSG_DONE.
    An error answer raises KernelError; ENOENT (no such table, set or
    element) just ends the answers when ``absent_ok``."""
    sock.send(request)
    for _ in range(100_000):  # bounded: a dump of our table is a few messages
        for kind, _seq, code, message in answers(sock.recv(1 << 20)):
            if kind == NLMSG_DONE:
                return
            if kind == NLMSG_ERROR:
                if code and not (absent_ok and code == errno.ENOENT):
                    raise KernelError(f"nf_tables: {reason(code, message)}")
                return
            yield message
    raise KernelError("nf_tables: a dump did not end")


HEADER = NLMSGHDR.size + 4  # netlink header, nfgenmsg


def read_generation(sock: socket.socket) -> int:
    kind = (NFNL_SUBSYS_NFTABLES << 8) | NFT_MSG_GETGEN
    request = pack_message(kind, NLM_F_REQUEST | NLM_F_ACK, 1, socket.AF_UNSPEC, 0, b"")
    generation = None
    for message in dump(sock, request):
        value = attributes(message, HEADER).get(NFTA_GEN_ID)
        if value is not None:
            generation = int(BE32.unpack(value)[0])
    if generation is None:
        raise KernelError("nf_tables did not tell its ruleset generation")
    return generation


def reason(code: int, answer: bytes) -> str:
    """errno text, plus the kernel's extended-ack message when it sent one."""
    text = f"{errno.errorcode.get(code, code)} ({os.strerror(code)})"
    # NLMSGERR_ATTR_MSG (1) follows the error struct (error + capped header).
    for kind, payload in walk(answer, NLMSGHDR.size + 4 + NLMSGHDR.size):
        if kind == 1:
            message = payload.split(b"\0", 1)[0].decode(errors="replace")
            if message:
                text += f": {message}"
            break
    return text
