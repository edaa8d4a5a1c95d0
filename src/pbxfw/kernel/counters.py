"""Packets and bytes the ``inet pbxfw`` table dropped, per reason, from its nft counters.

Every drop rule of the compiled table carries a ``counter`` (compiler.ruleset);
``nft -t -j list table inet pbxfw`` prints the rules with their counters and
leaves out the set elements (``-t``), so a read costs a few milliseconds
whatever the number of bans. The reason of a drop comes from its rule:

- comment ``jail NAME`` → ``("jail", NAME)`` (the bans chain);
- comment ``feed NAME`` → ``("feed", NAME)``; comment ``country …`` → ``("country", "")``
  (drop rules added for blocklist feeds and countries follow this convention);
- the ``sip_rate`` chain, or a comment ``rate limit …`` → ``("rate_limit", "")``;
- comment ``default deny …`` → ``("default_deny", "")``;
- any other counted drop → ``("other", "")``.

A country blocked for a service is folded into the allow sets (domain.decision),
so its packets are counted under ``default_deny``.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Mapping
from typing import Any

from pbxfw.compiler.names import TABLE, TABLE_FAMILY
from pbxfw.errors import KernelError

__all__ = ["Drops", "drops_from_json", "read_drops"]

#: (reason, jail) → (packets, bytes)
Drops = dict[tuple[str, str], tuple[int, int]]

_TIMEOUT_SECONDS = 10.0


def _reason(chain: str, comment: str) -> tuple[str, str]:
    if comment.startswith("jail "):
        return "jail", comment[5:].strip()
    if comment.startswith("feed "):
        return "feed", comment[5:].strip()
    if comment.startswith("country"):
        return "country", ""
    if chain == "sip_rate" or comment.startswith("rate limit"):
        return "rate_limit", ""
    if comment.startswith("default deny"):
        return "default_deny", ""
    return "other", ""


def drops_from_json(document: Mapping[str, Any]) -> Drops:
    """The drops counted in an ``nft -j list`` document (pure)."""
    drops: Drops = {}
    for item in document.get("nftables", ()):
        rule = item.get("rule") if isinstance(item, dict) else None
        if not isinstance(rule, dict):
            continue
        exprs = rule.get("expr") or ()
        if not any(isinstance(e, dict) and "drop" in e for e in exprs):
            continue
        counter = next(
            (e["counter"] for e in exprs if isinstance(e, dict) and "counter" in e), None
        )
        if not isinstance(counter, dict):
            continue
        key = _reason(str(rule.get("chain", "")), str(rule.get("comment", "")))
        packets, octets = drops.get(key, (0, 0))
        drops[key] = (
            packets + int(counter.get("packets", 0)),
            octets + int(counter.get("bytes", 0)),
        )
    return drops


def read_drops(netns: str | None, nft: str = "nft") -> Drops | None:
    """The drops the running table counted; None when there is no table."""
    argv = [nft, "-t", "-j", "list", "table", TABLE_FAMILY, TABLE]
    if netns:
        argv = ["ip", "netns", "exec", netns, *argv]
    try:
        result = subprocess.run(
            argv, capture_output=True, text=True, timeout=_TIMEOUT_SECONDS, check=False
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise KernelError(f"cannot read the table's counters: {exc}") from exc
    if result.returncode != 0:
        if "No such file or directory" in result.stderr:
            return None
        raise KernelError(f"cannot read the table's counters: {result.stderr.strip()}")
    try:
        return drops_from_json(json.loads(result.stdout))
    except (ValueError, TypeError, AttributeError) as exc:
        raise KernelError(f"cannot read the table's counters: {exc}") from exc
