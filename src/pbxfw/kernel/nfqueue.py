"""NFQUEUE for the scanner fingerprints: the agent's table, the queue's socket, verdicts.

Raw nfnetlink (``linux/netfilter/nfnetlink_queue.h``, ``xt_NFQUEUE.h``) over
the sockets of :mod:`pbxfw.kernel.nlsock`; no library, no C build.

- :func:`install_table` loads ``table inet sip_fingerprint``
  (``pbxfw.compiler.fingerprint``) with ``nft``, then adds the one rule nft
  cannot write on every kernel: the x_tables ``NFQUEUE`` target (revision
  3: queue number, ``bypass``) through nft_compat, as its own netlink
  message. :func:`remove_table` deletes the table.
- :class:`PacketQueue` binds the queue (copy mode: packet, the first
  :data:`COPY_BYTES` bytes; the fail-open flag, so a full queue accepts),
  reads the queued packets and sends each one's verdict.
"""

from __future__ import annotations

import errno
import socket
import struct
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass

from pbxfw.compiler.fingerprint import (
    FINGERPRINT_QUEUE,
    FINGERPRINT_TABLE,
    QUEUE_CHAIN,
    fingerprint_table,
)
from pbxfw.errors import KernelError
from pbxfw.kernel import nlsock as nl
from pbxfw.kernel.nfconst import (
    NFNL_MSG_BATCH_BEGIN,
    NFNL_MSG_BATCH_END,
    NFNL_SUBSYS_NFTABLES,
    NFPROTO_INET,
    NFT_MSG_NEWRULE,
    NFTA_EXPR_DATA,
    NFTA_EXPR_NAME,
    NFTA_LIST_ELEM,
    NFTA_RULE_CHAIN,
    NFTA_RULE_EXPRESSIONS,
    NFTA_RULE_TABLE,
    NLM_F_ACK,
    NLM_F_CREATE,
    NLM_F_REQUEST,
    NLMSG_ERROR,
    SOL_NETLINK,
)

__all__ = [
    "COPY_BYTES",
    "NF_ACCEPT",
    "NF_DROP",
    "Packet",
    "PacketQueue",
    "install_table",
    "remove_table",
    "udp_payload",
]

NFNL_SUBSYS_QUEUE = 3
NFQNL_MSG_PACKET = 0
NFQNL_MSG_VERDICT = 1
NFQNL_MSG_CONFIG = 2
NFQA_PACKET_HDR = 1
NFQA_VERDICT_HDR = 2
NFQA_PAYLOAD = 10
NFQA_CFG_CMD = 1
NFQA_CFG_PARAMS = 2
NFQA_CFG_QUEUE_MAXLEN = 3
NFQA_CFG_MASK = 4
NFQA_CFG_FLAGS = 5
NFQNL_CFG_CMD_BIND = 1
NFQNL_CFG_CMD_UNBIND = 2
NFQNL_COPY_PACKET = 2
NFQA_CFG_F_FAIL_OPEN = 1
NF_DROP = 0
NF_ACCEPT = 1
NETLINK_NO_ENOBUFS = 5
NLM_F_APPEND = 0x800
NFTA_TARGET_NAME = 1
NFTA_TARGET_REV = 2
NFTA_TARGET_INFO = 3
NFQ_FLAG_BYPASS = 0x01

#: What the kernel copies of each packet: IP and UDP headers and the SIP
#: headers the reader looks at (pbxfw.ips.sip.MAX_BYTES).
COPY_BYTES = 40 + 8 + 4096
#: Packets waiting for a verdict; beyond, the fail-open flag accepts.
QUEUE_LENGTH = 4096
_PACKET_HDR = struct.Struct("!IHB")
_VERDICT_HDR = struct.Struct("!II")


def _target_rule() -> bytes:
    """NEWRULE: the x_tables NFQUEUE target, revision 3 (struct
    xt_NFQ_info_v3: queue number, queues in total, flags), with ``bypass``."""
    info = struct.pack("=HHH", FINGERPRINT_QUEUE, 1, NFQ_FLAG_BYPASS) + b"\0\0"  # XT_ALIGN: 8
    target = nl.attr(NFTA_TARGET_NAME, b"NFQUEUE\0") + nl.attr(NFTA_TARGET_REV, nl.BE32.pack(3))
    target += nl.attr(NFTA_TARGET_INFO, info)
    expression = nl.nest(
        NFTA_LIST_ELEM, nl.attr(NFTA_EXPR_NAME, b"target\0"), nl.nest(NFTA_EXPR_DATA, target)
    )
    body = nl.attr(NFTA_RULE_TABLE, FINGERPRINT_TABLE.encode() + b"\0")
    body += nl.attr(NFTA_RULE_CHAIN, QUEUE_CHAIN.encode() + b"\0")
    body += nl.nest(NFTA_RULE_EXPRESSIONS, expression)
    kind = (NFNL_SUBSYS_NFTABLES << 8) | NFT_MSG_NEWRULE
    flags = NLM_F_REQUEST | NLM_F_ACK | NLM_F_CREATE | NLM_F_APPEND
    return nl.pack_message(kind, flags, 1, NFPROTO_INET, 0, body)


def _nft(netns: str | None, args: list[str], text: str | None = None) -> None:
    argv = ["nft", *args] if netns is None else ["ip", "netns", "exec", netns, "nft", *args]
    try:
        done = subprocess.run(
            argv, input=text, capture_output=True, text=True, timeout=30, check=False
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise KernelError(f"cannot run nft: {exc}") from None
    if done.returncode != 0:
        raise KernelError(f"nft refused the fingerprint table: {done.stderr.strip()}")


def install_table(sip_port: int, netns: str | None = None) -> None:
    """Load ``table inet sip_fingerprint`` for ``sip_port`` and its queue rule.
    Between the two steps the queue chain is empty: packets go on (accepted)."""
    _nft(netns, ["-f", "-"], fingerprint_table(sip_port))
    begin = nl.pack_message(
        NFNL_MSG_BATCH_BEGIN, NLM_F_REQUEST, 0, socket.AF_UNSPEC, NFNL_SUBSYS_NFTABLES, b""
    )
    end = nl.pack_message(
        NFNL_MSG_BATCH_END, NLM_F_REQUEST, 2, socket.AF_UNSPEC, NFNL_SUBSYS_NFTABLES, b""
    )
    batch = begin + _target_rule() + end
    with nl.request_socket(netns, len(batch)) as sock:
        sock.send(batch)
        for _ in range(16):  # bounded: the rule's ack, maybe the batch's
            for kind, seq, code, message in nl.answers(sock.recv(65536)):
                if kind == NLMSG_ERROR and code:
                    raise KernelError(
                        f"nf_tables refused the NFQUEUE rule: {nl.reason(code, message)}"
                    )
                if kind == NLMSG_ERROR and seq == 1:
                    return
    raise KernelError("nf_tables did not answer the NFQUEUE rule")


def remove_table(netns: str | None = None) -> None:
    """Delete ``table inet sip_fingerprint`` (absent: nothing to do)."""
    _nft(
        netns,
        ["-f", "-"],
        f"table inet {FINGERPRINT_TABLE}\ndelete table inet {FINGERPRINT_TABLE}\n",
    )


@dataclass(frozen=True, slots=True)
class Packet:
    """One queued packet: its id (for the verdict) and its bytes from the IP header on."""

    id: int
    data: bytes


def udp_payload(data: bytes) -> tuple[bytes, bytes] | None:
    """(the source address's bytes, the UDP payload) of an IPv4 or IPv6 UDP
    packet; None for anything else (an IPv6 extension header, a fragment,
    too short)."""
    if len(data) < 28:
        return None
    version = data[0] >> 4
    if version == 4:
        ihl = (data[0] & 0x0F) * 4
        flags_offset = (data[6] << 8) | data[7]
        if data[9] != 17 or ihl < 20 or flags_offset & 0x3FFF:  # not UDP, or a fragment
            return None
        return data[12:16], data[ihl + 8 :]
    if version == 6 and len(data) >= 48 and data[6] == 17:
        return data[8:24], data[48:]
    return None


class PacketQueue:
    """The fingerprint queue bound in ``netns``: :meth:`packets` reads,
    :meth:`verdict` answers. One thread reads and answers."""

    def __init__(self, netns: str | None = None, queue: int = FINGERPRINT_QUEUE) -> None:
        self.queue = queue
        self.sock = nl.open_socket(netns)
        try:
            self.sock.setsockopt(socket.SOL_SOCKET, 33, 8 << 20)  # SO_RCVBUFFORCE
            # A burst larger than the buffer loses notifications, not the
            # socket: their packets are accepted when the queue fills up.
            self.sock.setsockopt(SOL_NETLINK, NETLINK_NO_ENOBUFS, 1)
            self.sock.bind((0, 0))
            self._config(nl.attr(NFQA_CFG_CMD, struct.pack("!BxH", NFQNL_CFG_CMD_BIND, 0)))
            self._config(
                nl.attr(NFQA_CFG_PARAMS, struct.pack("!IB", COPY_BYTES, NFQNL_COPY_PACKET))
                + nl.attr(NFQA_CFG_QUEUE_MAXLEN, nl.BE32.pack(QUEUE_LENGTH))
                + nl.attr(NFQA_CFG_MASK, nl.BE32.pack(NFQA_CFG_F_FAIL_OPEN))
                + nl.attr(NFQA_CFG_FLAGS, nl.BE32.pack(NFQA_CFG_F_FAIL_OPEN))
            )
        except BaseException:
            self.sock.close()
            raise

    def _config(self, attrs: bytes) -> None:
        kind = (NFNL_SUBSYS_QUEUE << 8) | NFQNL_MSG_CONFIG
        message = nl.pack_message(
            kind, NLM_F_REQUEST | NLM_F_ACK, 1, socket.AF_UNSPEC, self.queue, attrs
        )
        self.sock.settimeout(5.0)
        self.sock.send(message)
        for _ in range(64):  # bounded: packets may come before the ack
            for kind_, _seq, code, answer in nl.answers(self.sock.recv(1 << 16)):
                if kind_ == NLMSG_ERROR:
                    if code:
                        raise KernelError(
                            f"cannot bind NFQUEUE {self.queue}: {nl.reason(code, answer)}"
                        )
                    return
        raise KernelError(f"NFQUEUE {self.queue}: no answer to its configuration")

    def fileno(self) -> int:
        return self.sock.fileno()

    def packets(self, timeout: float) -> Iterator[Packet]:
        """The packets of one read (waits up to ``timeout`` seconds; none then)."""
        self.sock.settimeout(timeout)
        try:
            data = self.sock.recv(1 << 20)
        except (TimeoutError, BlockingIOError):
            return
        except OSError as exc:
            if exc.errno == errno.ENOBUFS:
                return
            raise
        for kind, _seq, _code, message in nl.answers(data):
            if kind != (NFNL_SUBSYS_QUEUE << 8) | NFQNL_MSG_PACKET:
                continue
            found = nl.attributes(message, nl.HEADER)
            header = found.get(NFQA_PACKET_HDR)
            if header is None or len(header) < _PACKET_HDR.size:
                continue
            packet_id = _PACKET_HDR.unpack_from(header)[0]
            yield Packet(packet_id, found.get(NFQA_PAYLOAD, b""))

    def verdict(self, packet_id: int, verdict: int) -> None:
        kind = (NFNL_SUBSYS_QUEUE << 8) | NFQNL_MSG_VERDICT
        body = nl.attr(NFQA_VERDICT_HDR, _VERDICT_HDR.pack(verdict, packet_id))
        self.sock.send(nl.pack_message(kind, NLM_F_REQUEST, 0, socket.AF_UNSPEC, self.queue, body))

    def close(self) -> None:
        """Unbind and close. The kernel drops the packets still waiting for a
        verdict (a few at most: each is answered as it is read; SIP resends);
        the packets after them meet the rule's bypass: accepted."""
        try:
            kind = (NFNL_SUBSYS_QUEUE << 8) | NFQNL_MSG_CONFIG
            attrs = nl.attr(NFQA_CFG_CMD, struct.pack("!BxH", NFQNL_CFG_CMD_UNBIND, 0))
            self.sock.send(
                nl.pack_message(kind, NLM_F_REQUEST, 0, socket.AF_UNSPEC, self.queue, attrs)
            )
        except OSError:
            pass
        self.sock.close()
