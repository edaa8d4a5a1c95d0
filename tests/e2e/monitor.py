"""What the end-to-end suite measures: Asterisk's log lines and the kernel's bans.

``LogWatcher`` follows Asterisk's ``security_log`` and ``messages`` (polling
every 10 ms) and keeps every line with the wall-clock time it was first seen
and the remote address Asterisk wrote; security events carry their own
``EventTV`` with milliseconds, which is the time of a failure used for the
time-to-ban figures.

``BanMonitor`` runs ``nft monitor`` inside the PBX namespace and stamps each
element added to or deleted from a ban set with the time it was printed: the
moment the kernel started (or stopped) dropping that address.
"""

from __future__ import annotations

import contextlib
import ipaddress
import json
import re
import subprocess
import threading
import time
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

#: security events that are failures (what pbxfw must count)
FAILURE_EVENTS = frozenset(
    {"ChallengeResponseFailed", "InvalidAccountID", "InvalidPassword", "FailedACL"}
)

_EVENT = re.compile(r'SecurityEvent="([A-Za-z]+)"')
_EVENT_TV = re.compile(r'EventTV="([^"]+)"')
_REMOTE = re.compile(r'RemoteAddress="IPV[46]/(?:UDP|TCP|TLS|WS|WSS)/([^"]+)/\d+"')
_MESSAGES_ADDR = re.compile(r"failed for '\[?([0-9A-Fa-f.:]+?)\]?:\d+'")


@dataclass(frozen=True, slots=True)
class LogLine:
    file: str  # "security_log" or "messages"
    seen: float  # wall-clock time the line was first read
    text: str
    address: str | None
    event: str | None  # SecurityEvent, for security_log lines
    event_time: float | None  # EventTV, for security_log lines

    @property
    def time(self) -> float:
        """Best time of the line: EventTV (ms) when there is one, else when seen."""
        return self.event_time if self.event_time is not None else self.seen

    @property
    def is_failure(self) -> bool:
        return self.event in FAILURE_EVENTS


def parse_line(file: str, text: str, seen: float) -> LogLine:
    address = event = None
    event_time = None
    if file == "security_log":
        if m := _EVENT.search(text):
            event = m.group(1)
        if m := _REMOTE.search(text):
            address = m.group(1)
        if m := _EVENT_TV.search(text):
            with contextlib.suppress(ValueError):
                event_time = datetime.strptime(m.group(1), "%Y-%m-%dT%H:%M:%S.%f%z").timestamp()
    elif m := _MESSAGES_ADDR.search(text):
        address = m.group(1)
    return LogLine(file, seen, text, address, event, event_time)


class LogWatcher:
    """Follows the given log files from their current end."""

    def __init__(self, files: dict[str, Path], interval: float = 0.01) -> None:
        self.files = files
        self.interval = interval
        self.lines: list[LogLine] = []
        self._lock = threading.Lock()
        self._poll_lock = threading.Lock()
        self._stop = threading.Event()
        self._offsets = {name: (p.stat().st_size if p.exists() else 0) for name, p in files.items()}
        self._partial = dict.fromkeys(files, b"")
        self._thread = threading.Thread(target=self._run, name="log-watcher", daemon=True)

    def __enter__(self) -> LogWatcher:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=5)
        self._poll()  # the last lines

    def _run(self) -> None:
        while not self._stop.is_set():
            self._poll()
            self._stop.wait(self.interval)

    def _poll(self) -> None:
        with self._poll_lock:
            self._poll_files()

    def _poll_files(self) -> None:
        for name, path in self.files.items():
            try:
                size = path.stat().st_size
            except FileNotFoundError:
                continue
            offset = self._offsets[name]
            if size < offset:  # truncated
                offset, self._partial[name] = 0, b""
            if size == offset:
                continue
            with open(path, "rb") as f:
                f.seek(offset)
                data = f.read(size - offset)
            self._offsets[name] = offset + len(data)
            now = time.time()
            data = self._partial[name] + data
            *complete, self._partial[name] = data.split(b"\n")
            parsed = [
                parse_line(name, raw.decode("utf-8", "replace"), now)
                for raw in complete
                if raw.strip()
            ]
            with self._lock:
                self.lines.extend(parsed)

    def snapshot(self) -> list[LogLine]:
        """Every line so far, including what was written just now."""
        self._poll()
        with self._lock:
            return list(self.lines)

    def from_address(self, address: str) -> list[LogLine]:
        return [line for line in self.snapshot() if line.address == address]

    def failures(self, address: str) -> list[LogLine]:
        """Failure events of ``address`` (security_log: one per failure), by time."""
        found = [line for line in self.from_address(address) if line.is_failure]
        return sorted(found, key=lambda line: line.time)

    def wait_for(self, predicate, timeout: float) -> bool:  # type: ignore[no-untyped-def]
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if predicate(self.snapshot()):
                return True
            time.sleep(0.05)
        return False


@dataclass(frozen=True, slots=True)
class SetEvent:
    seen: float
    action: str  # "add" or "delete"
    set_name: str
    address: str


_ELEMENT = re.compile(r"^(add|delete) element inet pbxfw (\S+) \{(.*)\}")


class BanMonitor:
    """``nft monitor`` in ``netns``: when each address entered/left a ban set."""

    def __init__(self, netns: str) -> None:
        self.netns = netns
        self.events: list[SetEvent] = []
        self._lock = threading.Lock()
        self.proc = subprocess.Popen(
            ["ip", "netns", "exec", netns, "nft", "monitor", "elements"],
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
        )
        self._thread = threading.Thread(target=self._read, name="nft-monitor", daemon=True)
        self._thread.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            now = time.time()
            m = _ELEMENT.match(line.strip())
            if not m or not m.group(2).startswith("ban_"):
                continue
            for item in m.group(3).split(","):
                word = item.strip().split(" ")[0]
                if not word:
                    continue
                address = word.split("/")[0] if word.endswith(("/32", "/128")) else word
                with self._lock:
                    self.events.append(SetEvent(now, m.group(1), m.group(2), address))

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.proc.wait(timeout=3)
        self._thread.join(timeout=3)
        if self.proc.stdout is not None:  # the pipe the reader thread drained
            self.proc.stdout.close()

    def first_added(self, address: str, after: float = 0.0) -> float | None:
        """When ``address`` first entered a ban set (at or after ``after``)."""
        with self._lock:
            for event in self.events:
                if event.action == "add" and event.address == address and event.seen >= after:
                    return event.seen
        return None

    def removed(self, address: str, after: float = 0.0) -> float | None:
        with self._lock:
            for event in self.events:
                if event.action == "delete" and event.address == address and event.seen >= after:
                    return event.seen
        return None


def nft_json(netns: str, *what: str) -> dict:  # type: ignore[type-arg]
    out = subprocess.run(
        ["ip", "netns", "exec", netns, "nft", "-j", "list", *what],
        capture_output=True,
        text=True,
        timeout=10,
        check=False,
    )
    if out.returncode != 0:
        return {"nftables": []}
    return json.loads(out.stdout)  # type: ignore[no-any-return]


def set_members(netns: str, set_name: str) -> set[str]:
    """Addresses/CIDRs in ``inet pbxfw`` ``set_name`` right now."""
    doc = nft_json(netns, "set", "inet", "pbxfw", set_name)
    members: set[str] = set()
    for item in doc.get("nftables", []):
        body = item.get("set")
        if not body:
            continue
        for elem in body.get("elem", []):
            value = elem.get("elem", {}).get("val", elem) if isinstance(elem, dict) else elem
            if isinstance(value, dict) and "prefix" in value:
                members.add(f"{value['prefix']['addr']}/{value['prefix']['len']}")
            elif isinstance(value, dict) and "range" in value:
                lo, hi = value["range"]
                members.update(_range_to_cidrs(lo, hi))
            elif isinstance(value, str):
                members.add(value)
    return members


def _range_to_cidrs(lo: str, hi: str) -> list[str]:
    return [
        str(net)
        for net in ipaddress.summarize_address_range(
            ipaddress.ip_address(lo), ipaddress.ip_address(hi)
        )
    ]


def banned_now(netns: str, address: str) -> bool:
    ip = ipaddress.ip_address(address)
    suffix = "v4" if ip.version == 4 else "v6"
    for member in set_members(netns, f"ban_asterisk_{suffix}"):
        if ip in ipaddress.ip_network(member, strict=False):
            return True
    return False


def drop_counters(netns: str) -> dict[str, int]:
    """Packets dropped by the ``bans`` and ``sip_rate`` chains of ``inet pbxfw``."""
    totals = {"bans": 0, "sip_rate": 0}
    doc = nft_json(netns, "table", "inet", "pbxfw")
    for item in doc.get("nftables", []):
        rule = item.get("rule")
        if not rule or rule.get("chain") not in totals:
            continue
        exprs = rule.get("expr", [])
        if not any("drop" in e for e in exprs):
            continue
        for e in exprs:
            if "counter" in e:
                totals[rule["chain"]] += int(e["counter"].get("packets", 0))
    return totals
