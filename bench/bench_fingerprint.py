"""Scanner fingerprints (issue 18): what the NFQUEUE check costs new SIP flows and a running one.

Run as root: ``.venv/bin/python bench/bench_fingerprint.py`` (about 1 min;
``--seconds`` and ``--reps`` shorten it; ``--json`` prints one JSON object).
Two pairs of namespaces (the lab of bench_dataplane.py: a PBX namespace and a
client namespace on a veth pair), both with the same pbxfw table (firewall
on, SIP allowed from the Internet); in one of them the agent's fingerprint
part runs as the agent runs it (``FingerprintGuard.bind``: the queue table,
the NFQUEUE socket, the verdict thread, the shipped list). Interleaved,
medians reported:

- *new flows*: a raw socket sends a phone's SIP OPTIONS (User-Agent of a
  Yealink, so every packet is read and accepted) from a new (source address,
  source port) each packet, as fast as it can for ``--seconds``; the PBX side
  counts what arrives. With the check, every one of these packets is the
  first of a new flow: it goes to the agent and waits for its verdict. The
  figure is flows/s received with ÷ without; also how many of them the agent
  judged (a full queue accepts the rest unjudged: the queue's fail-open flag).
- *one flow*: a UDP socket sends the same request again and again on one
  (address, port): only its first packet is queued, the others carry the
  flow tag of pbxfw's input chain and are never queued. Figure: packets/s
  with ÷ without (expected: 1 within noise).

The baseline of each ratio is the same pbxfw table without the check,
measured in the same run.
"""

from __future__ import annotations

import argparse
import ipaddress
import json
import os
import statistics
import sys
import tempfile
from pathlib import Path

_HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(_HERE))
sys.path.insert(0, str(_HERE.parent))

from tests.kernel.lab import Lab, kernel_available, nft_ruleset, run  # noqa: E402

from bench_dataplane import _RECEIVER, namespace_pair  # noqa: E402
from pbxfw.agent.fingerprint import FingerprintGuard  # noqa: E402
from pbxfw.compiler import compile_ruleset  # noqa: E402
from pbxfw.domain.configuration import Configuration  # noqa: E402
from pbxfw.domain.fingerprints import DEFAULT_FINGERPRINTS, Matcher  # noqa: E402
from pbxfw.domain.networks import permanent_networks  # noqa: E402
from pbxfw.domain.settings import Settings  # noqa: E402
from pbxfw.kernel import NftBackend  # noqa: E402
from pbxfw.storage.db import database_url  # noqa: E402
from pbxfw.storage.repository import Store  # noqa: E402

SIP_PORT = 5060
PBX_ADDR = "192.0.2.1"
BLOCK = ipaddress.IPv4Network("100.64.0.0/16")
SETUPS = ("without", "with")

_OPTIONS = (
    "OPTIONS sip:100@192.0.2.1 SIP/2.0\\r\\nVia: SIP/2.0/UDP 100.64.0.1:5060;branch=z9hG4bK-1\\r\\n"
    "Max-Forwards: 70\\r\\nTo: <sip:100@192.0.2.1>\\r\\nFrom: <sip:100@192.0.2.1>;tag=1\\r\\n"
    "User-Agent: Yealink SIP-T46S 66.86.0.15\\r\\nCall-ID: 1\\r\\nCSeq: 1 OPTIONS\\r\\n"
    "Content-Length: 0\\r\\n\\r\\n"
)

_SEND_NEW_FLOWS = r"""
import json, socket, struct, sys, time
first, count, dst, port, secs, offset = sys.argv[1:7]
first, count, port, secs = int(first), int(count), int(port), float(secs)
data = b"PAYLOAD"
r = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_RAW)
pack = struct.Struct("!BBHHHBBH4s4sHHHH").pack
dstb, addr = socket.inet_aton(dst), (dst, 0)
send = r.sendto
i = int(offset)
sent = errors = 0
start = time.monotonic()
end = now = start
end += secs
while now < end:
    for _ in range(64):
        src = (first + i % count).to_bytes(4, "big")
        sport = 1024 + (i // count) % 64000
        try:
            send(pack(0x45, 0, 0, 0, 0, 64, 17, 0, src, dstb, sport, port, 8 + len(data), 0) + data, addr)
            sent += 1
        except OSError:
            errors += 1
        i += 1
    now = time.monotonic()
print(json.dumps({"sent": sent, "seconds": now - start, "errors": errors}), flush=True)
""".replace("PAYLOAD", _OPTIONS)

_SEND_ONE_FLOW = r"""
import json, socket, sys, time
src, dst, port, secs = sys.argv[1], sys.argv[2], int(sys.argv[3]), float(sys.argv[4])
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind((src, 40000))
s.connect((dst, port))
send, data = s.send, b"PAYLOAD"
sent = errors = 0
start = time.monotonic()
end = now = start
end += secs
while now < end:
    for _ in range(256):
        try:
            send(data)
            sent += 1
        except OSError:
            errors += 1
    now = time.monotonic()
print(json.dumps({"sent": sent, "seconds": now - start, "errors": errors}), flush=True)
""".replace("PAYLOAD", _OPTIONS)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=float, default=2.0, help="sending time per sample")
    parser.add_argument("--reps", type=int, default=5, help="interleaved samples per figure")
    parser.add_argument("--json", action="store_true", help="one JSON object")
    args = parser.parse_args()
    why = kernel_available()
    if why is not None:
        print(f"bench_fingerprint skipped: {why}")
        return
    config = Configuration(tuple(permanent_networks()), (), Settings(firewall_enabled=True))
    text = compile_ruleset(config)
    host_before = nft_ruleset()
    tmp = Path(tempfile.mkdtemp(prefix="pbxfw-bench-fp-"))
    store = Store.open(database_url(str(tmp / "pbxfw.db")), create=True)
    samples: dict[tuple[str, str], list[dict[str, float]]] = {}
    judged: dict[str, list[float]] = {}
    guard: FingerprintGuard | None = None
    client = BLOCK.network_address + 2
    with Lab("fpb") as lab:
        pairs: dict[str, tuple[str, str]] = {}
        try:
            for i, setup in enumerate(SETUPS):
                pbx, cli = namespace_pair(lab, i, client, BLOCK)
                NftBackend(pbx).apply(text)
                pairs[setup] = (pbx, cli)
            guard = FingerprintGuard(
                store,
                exempt=lambda _: False,
                ban=lambda bans, now: None,
                node="bench",
                site="default",
                netns=pairs["with"][0],
            )
            guard.matcher = Matcher(DEFAULT_FINGERPRINTS)
            guard.bind(SIP_PORT)
            offset = 0

            def measure(setup: str, mode: str, seconds: float) -> dict[str, float]:
                nonlocal offset
                pbx, cli = pairs[setup]
                receiver = [sys.executable, "-c", _RECEIVER, str(SIP_PORT), str(seconds + 5)]
                rx = lab.spawn(pbx, receiver)
                assert rx.stdout is not None
                if rx.stdout.readline().strip() != "ready":
                    raise RuntimeError(f"receiver in {pbx} did not start")
                if mode == "one_flow":
                    argv = [_SEND_ONE_FLOW, str(client), PBX_ADDR, str(SIP_PORT), str(seconds)]
                else:
                    argv = [_SEND_NEW_FLOWS, str(int(BLOCK.network_address)), "65000"]
                    argv += [PBX_ADDR, str(SIP_PORT), str(seconds), str(offset)]
                    offset += 5_000_000
                assert guard is not None
                before = guard.judged
                tx = lab.spawn(cli, [sys.executable, "-c", *argv])
                out, _ = tx.communicate(timeout=seconds + 20)
                sent = json.loads(out)
                got, _ = rx.communicate(timeout=15)
                return {
                    "sent_pps": sent["sent"] / sent["seconds"],
                    "pps": int(got.strip()) / sent["seconds"],
                    "judged_pps": (guard.judged - before) / sent["seconds"],
                }

            for setup in SETUPS:  # warm-up
                measure(setup, "one_flow", 0.3)
            for rep in range(args.reps):
                for mode in ("new_flows", "one_flow"):
                    order = SETUPS if rep % 2 == 0 else tuple(reversed(SETUPS))
                    for setup in order:
                        sample = measure(setup, mode, args.seconds)
                        samples.setdefault((mode, setup), []).append(sample)
                        if setup == "with":
                            judged.setdefault(mode, []).append(sample["judged_pps"])
        finally:
            if guard is not None:
                guard.close()
            store.close()
    host_after = nft_ruleset()
    leftovers = [n for n in run(["ip", "netns", "list"]).stdout.split() if n.startswith(lab.prefix)]

    def median(mode: str, setup: str, key: str = "pps") -> float:
        return statistics.median(s[key] for s in samples[(mode, setup)])

    figures = {
        "new_flows_per_s_without": median("new_flows", "without"),
        "new_flows_per_s_with": median("new_flows", "with"),
        "new_flows_judged_per_s": statistics.median(judged["new_flows"]),
        "one_flow_judged_per_s": statistics.median(judged["one_flow"]),
        "new_flows_sent_per_s": median("new_flows", "with", "sent_pps"),
        "new_flows_ratio": median("new_flows", "with") / median("new_flows", "without"),
        "one_flow_pps_without": median("one_flow", "without"),
        "one_flow_pps_with": median("one_flow", "with"),
        "one_flow_ratio": median("one_flow", "with") / median("one_flow", "without"),
        "host_ruleset_unchanged": host_before == host_after,
        "leftover_namespaces": leftovers,
        "load_before": os.getloadavg()[0],
    }
    if args.json:
        print(json.dumps(figures))
    else:
        print(f"bench_fingerprint: {args.reps} interleaved samples of {args.seconds} s, medians")
        print("| traffic | without the check | with the check | with ÷ without |")
        print("|---|---:|---:|---:|")
        print(
            f"| new SIP flow per packet (flows/s received) | "
            f"{figures['new_flows_per_s_without']:,.0f} | {figures['new_flows_per_s_with']:,.0f} "
            f"| {figures['new_flows_ratio']:.2f} |"
        )
        print(
            f"| one flow (packets/s) | {figures['one_flow_pps_without']:,.0f} | "
            f"{figures['one_flow_pps_with']:,.0f} | {figures['one_flow_ratio']:.2f} |"
        )
        print(
            f"- new flows judged by the agent: {figures['new_flows_judged_per_s']:,.0f}/s "
            f"(sent: {figures['new_flows_sent_per_s']:,.0f}/s; the rest accepted unjudged "
            "by the queue's fail-open flag)"
        )
        print(
            f"- one flow: packets judged by the agent: {figures['one_flow_judged_per_s']:,.1f}/s "
            "(its first packet only)"
        )
        print(
            f"- host `nft list ruleset` unchanged: {'yes' if host_before == host_after else 'NO'}"
        )
        print(f"- namespaces left behind: {', '.join(leftovers) or 'none'}")
    if host_before != host_after or leftovers:
        sys.exit(1)


if __name__ == "__main__":
    main()
