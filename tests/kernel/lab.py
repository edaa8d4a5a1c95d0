"""A lab of network namespaces for tests that send real packets.

Everything here happens inside namespaces the lab creates (names start with
``pbxfwt-<pid>-``) and is removed by ``Lab.close`` — call it in a ``finally``
or use the lab as a context manager / fixture. The host's own namespace is
never configured. Probes are bounded: each gives up after ``timeout``
seconds (0.5 by default) and a batch of probes runs concurrently in one
process, so a matrix of a few hundred probes takes about a second.

Typical use::

    require_kernel()
    with Lab("demo") as lab:
        pbx, client = lab.namespace("pbx"), lab.namespace("cli")
        lab.link(pbx, "c0", client, "p0")
        lab.addr(pbx, "c0", "10.77.1.1/24"); lab.addr(client, "p0", "10.77.1.10/24")
        listener = lab.listen(pbx, tcp=[22], udp=[5060])
        results = lab.probe(client, [Probe("tcp", "10.77.1.10", "10.77.1.1", 22)])
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import pytest

__all__ = [
    "PREFIX",
    "Lab",
    "Listener",
    "Probe",
    "kernel_available",
    "nft_ruleset",
    "require_kernel",
    "run",
]

PREFIX = f"pbxfwt-{os.getpid()}"


def kernel_available() -> str | None:
    """None when kernel tests can run here, else why not."""
    if os.geteuid() != 0:
        return "kernel tests need root (network namespaces, nftables)"
    for tool in ("nft", "ip"):
        if shutil.which(tool) is None:
            return f"kernel tests need the {tool!r} command"
    return None


def require_kernel() -> None:
    """Skip the calling test when it cannot run here — but FAIL under ``CI=true``,
    where a skipped kernel test would hide that the firewall was never tested."""
    why = kernel_available()
    if why is None:
        return
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"{why} (CI=true: kernel tests must run)", pytrace=False)
    pytest.skip(why)


def run(
    argv: Sequence[str], *, input: str | None = None, timeout: float = 20.0, check: bool = True
) -> subprocess.CompletedProcess[str]:
    """Run a command, text in and out; raise with its stderr when it fails."""
    result = subprocess.run(
        list(argv), input=input, capture_output=True, text=True, timeout=timeout, check=False
    )
    if check and result.returncode != 0:
        raise RuntimeError(
            f"{' '.join(argv)} failed ({result.returncode}): {result.stderr.strip()}"
        )
    return result


def nft_ruleset(netns: str | None = None) -> str:
    """``nft list ruleset`` of a namespace (None: this one)."""
    prefix = ["ip", "netns", "exec", netns] if netns else []
    return run([*prefix, "nft", "list", "ruleset"]).stdout


@dataclass(frozen=True, slots=True)
class Probe:
    """One connection attempt: ``kind`` from ``src`` to ``dst`` (port for tcp/udp).

    ``sport`` pins the source port, so two UDP probes with the same ``sport``
    belong to one conntrack flow (to test that a ban stops a running flow).
    """

    kind: str  # "tcp", "udp" or "icmp"
    src: str
    dst: str
    port: int = 0
    sport: int = 0


# The helper program run inside namespaces: `serve` (listeners that echo
# probes and count UDP packets per port and source), `probe` (a batch of
# concurrent probes), `flood` (paced UDP packets). Kept in one string so it
# runs with the interpreter alone, no import path needed in the namespace.
_AGENT = r"""
import json, os, select, socket, struct, sys, threading, time

def v4(text):
    return ":" not in text

def serve(spec):
    socks = {}
    for port in spec["tcp"]:
        s = socket.socket(socket.AF_INET6, socket.SOCK_STREAM)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
        s.bind(("::", port)); s.listen(128); s.setblocking(False)
        socks[s.fileno()] = ("tcp", port, s)
    for port in spec["udp"]:
        s = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
        s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
        s.bind(("::", port)); s.setblocking(False)
        socks[s.fileno()] = ("udp", port, s)
    counts = {}
    poller = select.poll()
    for fd in socks:
        poller.register(fd, select.POLLIN)
    poller.register(0, select.POLLIN)
    print("ready", flush=True)
    while True:
        for fd, _ in poller.poll(1000):
            if fd == 0:
                line = sys.stdin.readline().strip()
                if line in ("", "quit"):
                    return
                if line == "dump":
                    print(json.dumps(counts), flush=True)
                elif line == "reset":
                    counts = {}
                continue
            kind, port, s = socks[fd]
            try:
                if kind == "tcp":
                    conn, _ = s.accept(); conn.close()
                    continue
                while True:
                    data, addr = s.recvfrom(2048)
                    host = addr[0].removeprefix("::ffff:")
                    key = f"{port} {host}"
                    counts[key] = counts.get(key, 0) + 1
                    if data.startswith(b"probe"):
                        s.sendto(data, addr)
            except (BlockingIOError, ConnectionError):
                pass

def checksum(data):
    if len(data) % 2:
        data += b"\0"
    total = sum(struct.unpack(f"!{len(data) // 2}H", data))
    total = (total >> 16) + (total & 0xFFFF); total += total >> 16
    return ~total & 0xFFFF

def icmp(p, ident, timeout):
    family = socket.AF_INET if v4(p["src"]) else socket.AF_INET6
    proto = socket.IPPROTO_ICMP if v4(p["src"]) else socket.IPPROTO_ICMPV6
    s = socket.socket(family, socket.SOCK_RAW, proto)
    try:
        s.bind((p["src"], 0))
        kind, reply = (8, 0) if family == socket.AF_INET else (128, 129)
        head = struct.pack("!BBHHH", kind, 0, 0, ident, 1) + b"pbxfw"
        if family == socket.AF_INET:
            head = head[:2] + struct.pack("!H", checksum(head)) + head[4:]
        s.sendto(head, (p["dst"], 0))
        end = time.monotonic() + timeout
        while (left := end - time.monotonic()) > 0:
            s.settimeout(left)
            try:
                data, addr = s.recvfrom(2048)
            except socket.timeout:
                break
            if family == socket.AF_INET:
                data = data[(data[0] & 0x0F) * 4:]
            if addr[0] == p["dst"] and data[0] == reply and struct.unpack("!H", data[4:6])[0] == ident:
                return "open"
        return "timeout"
    finally:
        s.close()

def one(p, ident, timeout):
    try:
        if p["kind"] == "icmp":
            return icmp(p, ident, timeout)
        family = socket.AF_INET if v4(p["src"]) else socket.AF_INET6
        kind = socket.SOCK_STREAM if p["kind"] == "tcp" else socket.SOCK_DGRAM
        s = socket.socket(family, kind)
        try:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            s.bind((p["src"], p.get("sport", 0)))
            s.settimeout(timeout)
            if kind == socket.SOCK_STREAM:
                s.connect((p["dst"], p["port"]))
                return "open"
            s.connect((p["dst"], p["port"]))
            s.send(b"probe")
            s.recv(64)
            return "open"
        finally:
            s.close()
    except socket.timeout:
        return "timeout"
    except ConnectionRefusedError:
        return "refused"
    except OSError as exc:
        return f"error: {exc}"

def probe(spec):
    out = [None] * len(spec["probes"])
    def work(i, p):
        out[i] = one(p, (os.getpid() * 64 + i) & 0xFFFF, spec["timeout"])
    threads = [threading.Thread(target=work, args=(i, p)) for i, p in enumerate(spec["probes"])]
    for t in threads: t.start()
    for t in threads: t.join()
    print(json.dumps(out), flush=True)

def flood(spec):
    family = socket.AF_INET if v4(spec["src"]) else socket.AF_INET6
    s = socket.socket(family, socket.SOCK_DGRAM)
    s.bind((spec["src"], 0))
    interval, sent = 1.0 / spec["pps"], 0
    start = time.monotonic()
    while (now := time.monotonic()) - start < spec["seconds"]:
        target = start + sent * interval
        if target > now:
            time.sleep(target - now)
        try:
            s.sendto(b"flood", (spec["dst"], spec["port"])); sent += 1
        except OSError:
            pass
    print(json.dumps({"sent": sent}), flush=True)

spec = json.loads(sys.argv[1])
{"serve": serve, "probe": probe, "flood": flood}[spec["mode"]](spec)
"""


class Listener:
    """TCP listeners and UDP echo/counters on given ports in one namespace.

    UDP datagrams are counted per ``"PORT SOURCE"``; a datagram starting with
    ``probe`` is echoed, so a UDP probe knows it got through.
    """

    def __init__(self, proc: subprocess.Popen[str]) -> None:
        self.proc = proc

    def counts(self) -> dict[str, int]:
        """UDP packets received so far, by ``"PORT SOURCE"``."""
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.proc.stdin.write("dump\n")
        self.proc.stdin.flush()
        data: dict[str, int] = json.loads(self.proc.stdout.readline())
        return data

    def reset(self) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write("reset\n")
        self.proc.stdin.flush()

    def stop(self) -> None:
        if self.proc.poll() is None:
            try:
                assert self.proc.stdin is not None
                self.proc.stdin.write("quit\n")
                self.proc.stdin.flush()
                self.proc.wait(timeout=3)
            except (OSError, subprocess.TimeoutExpired):
                self.proc.kill()
                self.proc.wait(timeout=3)


class Lab:
    """Namespaces, veth links and processes, all removed by ``close``."""

    def __init__(self, tag: str) -> None:
        self.prefix = f"{PREFIX}-{tag}"
        self.namespaces: list[str] = []
        self.procs: list[subprocess.Popen[str]] = []

    def __enter__(self) -> Lab:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- topology -----------------------------------------------------------
    def namespace(self, short: str) -> str:
        """Create ``<prefix>-<short>`` with lo up and IPv6 DAD off; its name."""
        name = f"{self.prefix}-{short}"
        run(["ip", "netns", "add", name])
        self.namespaces.append(name)
        for key in ("net.ipv6.conf.all.accept_dad", "net.ipv6.conf.default.accept_dad"):
            run(["ip", "netns", "exec", name, "sysctl", "-qw", f"{key}=0"])
        run(["ip", "-n", name, "link", "set", "lo", "up"])
        return name

    def link(self, ns_a: str, if_a: str, ns_b: str, if_b: str) -> None:
        """A veth pair ``ns_a:if_a`` ↔ ``ns_b:if_b``, created inside the
        namespaces (never in the host's), both ends up."""
        run(
            [
                "ip",
                "-n",
                ns_a,
                "link",
                "add",
                if_a,
                "type",
                "veth",
                "peer",
                "name",
                if_b,
                "netns",
                ns_b,
            ]
        )
        run(["ip", "-n", ns_a, "link", "set", if_a, "up"])
        run(["ip", "-n", ns_b, "link", "set", if_b, "up"])

    def addr(self, ns: str, dev: str, cidr: str) -> None:
        """Add an address (IPv6 with ``nodad``, usable at once)."""
        extra = ["nodad"] if ":" in cidr else []
        run(["ip", "-n", ns, "addr", "add", cidr, "dev", dev, *extra])

    def route(self, ns: str, dest: str, dev: str) -> None:
        run(["ip", "-n", ns, "route", "add", dest, "dev", dev])

    def exec(self, ns: str, *argv: str, input: str | None = None, check: bool = True) -> str:
        """Run a command in ``ns``; its stdout."""
        return run(["ip", "netns", "exec", ns, *argv], input=input, check=check).stdout

    def nft(self, ns: str, *args: str, input: str | None = None) -> str:
        return self.exec(ns, "nft", *args, input=input)

    # -- processes ----------------------------------------------------------
    def spawn(self, ns: str, argv: Sequence[str]) -> subprocess.Popen[str]:
        """Start a process in ``ns``; it is killed by ``close``."""
        proc = subprocess.Popen(
            ["ip", "netns", "exec", ns, *argv],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
        )
        self.procs.append(proc)
        return proc

    def _agent(self, ns: str, spec: dict[str, object]) -> subprocess.Popen[str]:
        return self.spawn(ns, [sys.executable, "-c", _AGENT, json.dumps(spec)])

    def listen(self, ns: str, *, tcp: Iterable[int] = (), udp: Iterable[int] = ()) -> Listener:
        """Listeners on every ``tcp``/``udp`` port (IPv4 and IPv6), ready on return."""
        proc = self._agent(ns, {"mode": "serve", "tcp": sorted(set(tcp)), "udp": sorted(set(udp))})
        assert proc.stdout is not None
        line = proc.stdout.readline().strip()
        if line != "ready":
            raise RuntimeError(f"listener in {ns} did not start (exit {proc.poll()})")
        return Listener(proc)

    def probe(self, ns: str, probes: Sequence[Probe], timeout: float = 0.5) -> dict[Probe, str]:
        """Run ``probes`` concurrently from ``ns``: each ``open``, ``timeout``
        (dropped), ``refused`` (nothing listening) or ``error: ...``."""
        if not probes:
            return {}
        spec = {
            "mode": "probe",
            "timeout": timeout,
            "probes": [
                {"kind": p.kind, "src": p.src, "dst": p.dst, "port": p.port, "sport": p.sport}
                for p in probes
            ],
        }
        proc = self._agent(ns, spec)
        out, _ = proc.communicate(timeout=timeout * 4 + 10)
        answers: list[str] = json.loads(out)
        return dict(zip(probes, answers, strict=True))

    def flood(
        self, ns: str, src: str, dst: str, port: int, pps: int, seconds: float
    ) -> subprocess.Popen[str]:
        """Start sending ``pps`` UDP packets a second for ``seconds``; the
        process prints ``{"sent": N}`` when done."""
        spec = {
            "mode": "flood",
            "src": src,
            "dst": dst,
            "port": port,
            "pps": pps,
            "seconds": seconds,
        }
        return self._agent(ns, spec)

    # -- cleanup ------------------------------------------------------------
    def close(self) -> None:
        """Kill the lab's processes, then delete its namespaces. Never raises."""
        for proc in self.procs:
            if proc.poll() is None:
                proc.kill()
            with contextlib.suppress(subprocess.TimeoutExpired, ValueError, OSError):
                proc.communicate(timeout=3)
        self.procs.clear()
        for name in reversed(self.namespaces):
            # Processes still inside one of our namespaces (a watchdog, a
            # helper) are ours: stop them so the namespace can go.
            pids = run(["ip", "netns", "pids", name], check=False).stdout.split()
            for pid in pids:
                with contextlib.suppress(ProcessLookupError, ValueError):
                    os.kill(int(pid), signal.SIGKILL)
            for _ in range(20):
                if run(["ip", "netns", "del", name], check=False).returncode == 0:
                    break
                time.sleep(0.05)
        self.namespaces.clear()
