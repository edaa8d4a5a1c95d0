"""Generate a deterministic Asterisk 22 log for the IPS scan benchmark (issue 5).

Run: ``.venv/bin/python bench/gen_asterisk_log.py OUT [--lines N] [--seed S]``.

The file is what an Asterisk 22 PBX with ``dateformat=%F %T`` and
``messages => notice,warning,error,security,verbose`` in ``logger.conf``
writes (formats: docs/ips-formats.md and tests/ips/fixtures): every line is
``[YYYY-MM-DD HH:MM:SS] LEVEL[lwp][callid] module.c: message``.

About 10 % of the lines are failures from many sources (a pool of
attacker addresses, IPv4 and some IPv6), written as Asterisk writes them —
usually in pairs, the NOTICE of the module and the SECURITY event of
res_security_log, in the same second, several attempts per second in a
burst:

* PJSIP ``Request 'REGISTER'|'INVITE'|'OPTIONS' from '…' failed for 'addr:port'
  (callid: …) - No matching endpoint found | Failed to authenticate |
  Not match Endpoint ACL`` + ``InvalidAccountID`` / ``ChallengeResponseFailed`` /
  ``FailedACL`` (``Severity="Error"``), the bad-password case preceded by its
  ``ChallengeSent`` (``Severity="Informational"``);
* calls to an extension not in the context (res_pjsip_session);
* chan_sip registration failures (chan_sip is gone from Asterisk 22, but the
  lines are in the logs of the many PBXs still on older versions and
  fail2ban's filter knows them);
* AMI (manager.c + ``Service="AMI"`` events) and IAX2 failures.

The rest is normal traffic: calls (pbx.c ``Executing``, app_dial, bridges),
registrations and qualifies of the PBX's own phones with their
Informational ``ChallengeSent``/``SuccessfulAuth`` events, and a little
benign NOTICE/WARNING noise.

Every failure line is one that both fail2ban's stock ``filter.d/asterisk.conf``
and pbxfw's recognisers match, and no other line is matched by either, so
both must report the same count (``expected_failures`` returns it). Forms one
of them reads and the other does not are left out on purpose, see
docs/benchmarks-ips.md: the PJSIP ``… after N tries in X ms`` suffix
(pbxfw only), WARNING-level failure messages and ``Friendly Scanner`` /
``hacking attempt`` lines (fail2ban only).
"""

from __future__ import annotations

import argparse
import random
import sys
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

__all__ = ["generate", "main"]

START = datetime(2026, 11, 1, 0, 0, 0, tzinfo=UTC)
PBX = "192.0.2.10"
PHONES = [(str(200 + i), f"10.0.{i // 200}.{10 + i % 200}") for i in range(300)]


class _Writer:
    """Lines with a clock that advances about ``step`` seconds per line."""

    def __init__(self, rng: random.Random, step: float) -> None:
        self.rng = rng
        self.step = step
        self.t = START.timestamp()
        self.lines: list[str] = []
        self.failures = 0
        self._second = -1
        self._stamp = ""

    def stamp(self) -> str:
        second = int(self.t)
        if second != self._second:
            self._second = second
            self._stamp = datetime.fromtimestamp(second, UTC).strftime("%Y-%m-%d %H:%M:%S")
        return self._stamp

    def tick(self, factor: float = 1.0) -> None:
        self.t += self.rng.expovariate(1.0) * self.step * factor

    def add(self, level: str, module: str, message: str, callid: str = "") -> None:
        lwp = 1000 + self.rng.randrange(40000)
        self.lines.append(f"[{self.stamp()}] {level}[{lwp}]{callid} {module}: {message}\n")

    def fail(self, level: str, module: str, message: str) -> None:
        self.add(level, module, message)
        self.failures += 1

    def security(
        self,
        event: str,
        severity: str,
        service: str,
        account: str,
        session: str,
        local: str,
        remote: str,
        extra: str = "",
    ) -> None:
        ms = int((self.t % 1) * 1000)
        tv = f"{self.stamp().replace(' ', 'T')}.{ms:03d}+0000"
        message = (
            f'SecurityEvent="{event}",EventTV="{tv}",Severity="{severity}",'
            f'Service="{service}",EventVersion="1",AccountID="{account}",'
            f'SessionID="{session}",LocalAddress="{local}",RemoteAddress="{remote}"{extra}'
        )
        if severity == "Error":
            self.fail("SECURITY", "res_security_log.c", message)
        else:
            self.add("SECURITY", "res_security_log.c", message)


def _attackers(rng: random.Random, n: int) -> list[tuple[str, int]]:
    """``n`` distinct public-looking source addresses (5 % IPv6) with a base port."""
    seen: set[str] = set()
    pool: list[tuple[str, int]] = []
    while len(pool) < n:
        if rng.random() < 0.05:
            addr = (
                f"2001:db8:{rng.randrange(1, 0xFFFF):x}:{rng.randrange(0xFFFF):x}"
                f"::{rng.randrange(1, 0xFFFF):x}"
            )
        else:
            first = rng.choice(
                [
                    5,
                    23,
                    31,
                    37,
                    45,
                    46,
                    62,
                    77,
                    80,
                    85,
                    89,
                    91,
                    103,
                    141,
                    185,
                    193,
                    194,
                    195,
                    212,
                    213,
                ]
            )
            addr = f"{first}.{rng.randrange(256)}.{rng.randrange(256)}.{rng.randrange(1, 255)}"
        if addr not in seen:
            seen.add(addr)
            pool.append((addr, rng.choice([5060, 5060, 5070, 5080, 5160]) + rng.randrange(100)))
    return pool


def _hex(rng: random.Random, n: int) -> str:
    return f"{rng.getrandbits(4 * n):0{n}x}"


def generate(lines: int = 1_000_000, seed: int = 5) -> tuple[str, int]:
    """The log text and the number of failure lines in it."""
    rng = random.Random(seed)
    w = _Writer(rng, step=0.02)  # ~50 lines/s: 1M lines ≈ 5.5 hours
    attackers = _attackers(rng, 20_000)
    channel = [0]

    def chan() -> str:
        channel[0] += 1
        return f"{channel[0] & 0xFFFFFFF:08x}"

    def remote_of(addr: str, port: int, transport: str = "UDP") -> str:
        return f"IPV{'6' if ':' in addr else '4'}/{transport}/{addr}/{port}"

    def local_of(addr: str, transport: str = "UDP", port: int = 5060) -> str:
        return (
            f"IPV6/{transport}/2001:db8::10/{port}"
            if ":" in addr
            else f"IPV4/{transport}/{PBX}/{port}"
        )

    def hostport(addr: str, port: int) -> str:
        return f"[{addr}]:{port}" if ":" in addr else f"{addr}:{port}"

    def call() -> None:
        a, _ = rng.choice(PHONES)
        b, _ = rng.choice(PHONES)
        c = f"[C-{chan()}]"
        ca, cb = _hex(rng, 8), _hex(rng, 8)
        w.add(
            "VERBOSE",
            "pbx.c",
            f'Executing [{b}@internal:1] Set("PJSIP/{a}-{ca}", "CALLERID(name)={a}") in new stack',
            c,
        )
        w.add(
            "VERBOSE",
            "pbx.c",
            f'Executing [{b}@internal:2] Dial("PJSIP/{a}-{ca}", "PJSIP/{b},30,tT") in new stack',
            c,
        )
        w.add("VERBOSE", "app_dial.c", f"Called PJSIP/{b}", c)
        w.add("VERBOSE", "app_dial.c", f"PJSIP/{b}-{cb} is ringing", c)
        w.tick(20)
        w.add("VERBOSE", "app_dial.c", f"PJSIP/{b}-{cb} answered PJSIP/{a}-{ca}", c)
        w.add(
            "VERBOSE",
            "bridge_channel.c",
            f"Channel PJSIP/{b}-{cb} joined 'simple_bridge' basic-bridge <{_hex(rng, 8)}>",
            c,
        )
        w.add(
            "VERBOSE",
            "bridge_channel.c",
            f"Channel PJSIP/{a}-{ca} joined 'simple_bridge' basic-bridge <{_hex(rng, 8)}>",
            c,
        )
        w.tick(20)
        w.add(
            "VERBOSE",
            "bridge_channel.c",
            f"Channel PJSIP/{b}-{cb} left 'simple_bridge' basic-bridge <{_hex(rng, 8)}>",
            c,
        )
        w.add(
            "VERBOSE",
            "pbx.c",
            f'Spawn extension ({b}, internal, 2) exited non-zero on "PJSIP/{a}-{ca}"',
            c,
        )

    def register() -> None:
        ext, ip = rng.choice(PHONES)
        port = 5060 + rng.randrange(2000)
        session = f"{_hex(rng, 8)}-{_hex(rng, 8)}@{ip}"
        remote, local = remote_of(ip, port), local_of(ip)
        nonce = f"{rng.getrandbits(31)}/{_hex(rng, 32)}"
        w.security(
            "ChallengeSent",
            "Informational",
            "PJSIP",
            ext,
            session,
            local,
            remote,
            f',Challenge="{nonce}"',
        )
        w.security(
            "SuccessfulAuth",
            "Informational",
            "PJSIP",
            ext,
            session,
            local,
            remote,
            ',UsingPassword="1"',
        )
        if rng.random() < 0.3:
            w.add(
                "VERBOSE",
                "res_pjsip_registrar.c",
                f"Added contact 'sip:{ext}@{ip}:{port};transport=udp' to AOR '{ext}' "
                "with expiration of 3600 seconds",
            )
        else:
            w.add(
                "VERBOSE",
                "res_pjsip/pjsip_options.c",
                f"Contact {ext}/sip:{ext}@{ip}:{port} is now Reachable. "
                f"RTT: {rng.random() * 40:.3f} msec",
            )

    def noise() -> None:
        r = rng.random()
        if r < 0.4:
            w.add(
                "NOTICE",
                "res_rtp_asterisk.c",
                f"Strict RTP learning complete - Locking on source address "
                f"{rng.choice(PHONES)[1]}:{10000 + 2 * rng.randrange(5000)}",
                f"[C-{chan()}]",
            )
        elif r < 0.6:
            ext = rng.choice(PHONES)[0]
            w.add("NOTICE", "res_pjsip/pjsip_options.c", f"Endpoint {ext} is now Unreachable")
        elif r < 0.8:
            w.add(
                "WARNING",
                "res_pjsip_sdp_rtp.c",
                f"Failed to apply media stream for channel PJSIP/{rng.choice(PHONES)[0]}",
            )
        else:
            w.add(
                "WARNING",
                "taskprocessor.c",
                "The 'stasis/m:cache_pattern:1/endpoint:all' task processor queue reached "
                "500 scheduled tasks again.",
            )

    def attack() -> None:
        addr, port = rng.choice(attackers)
        port += rng.randrange(50)
        kind = rng.random()
        burst = rng.choice([1, 1, 2, 3, 4, 6, 8])
        remote, local = remote_of(addr, port), local_of(addr)
        hp = hostport(addr, port)
        for _ in range(burst):
            user = rng.choice(
                [
                    "100",
                    "1000",
                    "1001",
                    "200",
                    "admin",
                    "test",
                    "101",
                    "9999",
                    str(rng.randrange(100, 10000)),
                ]
            )
            callid = rng.choice(
                [
                    _hex(rng, 32),
                    f"{rng.getrandbits(31)}",
                    f"{_hex(rng, 8)}-{_hex(rng, 8)}@{addr}" if ":" not in addr else _hex(rng, 16),
                ]
            )
            frm = rng.choice(
                [
                    f"<sip:{user}@{PBX}>",
                    f'"{user}" <sip:{user}@{PBX}>',
                    f"<sip:{user}@{PBX};transport=UDP>",
                ]
            )
            if kind < 0.45:  # unknown account
                method = rng.choice(["REGISTER", "REGISTER", "INVITE", "OPTIONS"])
                w.fail(
                    "NOTICE",
                    "res_pjsip/pjsip_distributor.c",
                    f"Request '{method}' from '{frm}' failed for '{hp}' (callid: {callid}) "
                    "- No matching endpoint found",
                )
                w.security("InvalidAccountID", "Error", "PJSIP", user, callid, local, remote)
            elif kind < 0.75:  # wrong password
                nonce = f"{rng.getrandbits(31)}/{_hex(rng, 32)}"
                w.security(
                    "ChallengeSent",
                    "Informational",
                    "PJSIP",
                    user,
                    callid,
                    local,
                    remote,
                    f',Challenge="{nonce}"',
                )
                w.tick(0.1)
                w.fail(
                    "NOTICE",
                    "res_pjsip/pjsip_distributor.c",
                    f"Request 'REGISTER' from '{frm}' failed for '{hp}' (callid: {callid}) "
                    "- Failed to authenticate",
                )
                w.security(
                    "ChallengeResponseFailed",
                    "Error",
                    "PJSIP",
                    user,
                    callid,
                    local,
                    remote,
                    f',Challenge="{nonce}",Response="{_hex(rng, 32)}",ExpectedResponse=""',
                )
            elif kind < 0.80:  # endpoint ACL
                w.fail(
                    "NOTICE",
                    "res_pjsip/pjsip_distributor.c",
                    f"Request 'INVITE' from '{frm}' failed for '{hp}' (callid: {callid}) "
                    "- Not match Endpoint ACL",
                )
                w.security(
                    "FailedACL",
                    "Error",
                    "PJSIP",
                    user,
                    callid,
                    local,
                    remote,
                    ',ACLName="endpoint"',
                )
            elif kind < 0.88:  # toll fraud attempt
                exten = rng.choice(["00972", "011972", "900441", "9011"]) + str(
                    rng.randrange(10**8, 10**9)
                )
                w.fail(
                    "NOTICE",
                    "res_pjsip_session.c",
                    f"Call from 'anonymous' (UDP:{hp}) to extension '{exten}' rejected "
                    "because extension not found in context 'from-external'.",
                )
            elif kind < 0.95:  # chan_sip (older PBXs)
                reason = rng.choice(
                    [
                        "Wrong password",
                        "No matching peer found",
                        "Username/auth name mismatch",
                        "Device does not match ACL",
                    ]
                )
                w.fail(
                    "NOTICE",
                    "chan_sip.c",
                    f"Registration from '{frm}' failed for '{hp}' - {reason}",
                )
            elif kind < 0.98:  # AMI
                if ":" in addr:
                    continue
                ami = rng.choice(["admin", "manager", "asterisk"])
                w.fail(
                    "NOTICE",
                    "manager.c",
                    f"{addr} tried to authenticate with nonexistent user '{ami}'",
                )
                w.security(
                    "InvalidAccountID",
                    "Error",
                    "AMI",
                    ami,
                    f"0x{_hex(rng, 12)}",
                    f"IPV4/TCP/{PBX}/5038",
                    f"IPV4/TCP/{addr}/{port}",
                    f',SessionTV="{w.stamp().replace(" ", "T")}.000+0000"',
                )
            else:  # IAX2
                if ":" in addr:
                    continue
                w.fail("NOTICE", "chan_iax2.c", f"Host {addr} failed to authenticate as '{user}'")
            w.tick(0.05)

    scenarios: list[tuple[float, Callable[[], None]]] = [
        (0.50, call),
        (0.25, register),
        (0.04, noise),
        (0.095, attack),
    ]
    weights = [s[0] for s in scenarios]
    actions = [s[1] for s in scenarios]
    while len(w.lines) < lines:
        rng.choices(actions, weights)[0]()
        w.tick()
    # Trim to exactly ``lines``: recount the failures of the dropped tail.
    dropped = w.lines[lines:]
    del w.lines[lines:]
    w.failures -= sum(1 for line in dropped if _is_failure(line))
    return "".join(w.lines), w.failures


def _is_failure(line: str) -> bool:
    """Whether a generated line is one of the failure lines (for the tail trim)."""
    return 'Severity="Error"' in line or (
        " NOTICE[" in line
        and (
            "' failed for '" in line
            or "rejected because" in line
            or "tried to authenticate" in line
            or "failed to authenticate" in line
        )
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path)
    parser.add_argument("--lines", type=int, default=1_000_000)
    parser.add_argument("--seed", type=int, default=5)
    args = parser.parse_args(argv)
    text, failures = generate(args.lines, args.seed)
    args.out.write_text(text, encoding="utf-8")
    print(f"{args.out}: {args.lines:,} lines, {failures:,} failure lines", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
