"""Changing a feed's kernel sets by the difference only (issue 17).

A refresh of a feed sends only the entries that changed
(``compiler.feeds.feed_changes``): single addresses as one netlink batch
of ``NEWSETELEM``/``DELSETELEM`` messages (kernel.netlink, no ``nft``
process, no read-back), CIDR blocks as one ``nft -f`` transaction of
``delete element``/``add element``. A full load of the table carries every
feed's kept list in the text (compiler.feeds), so the kernel and the kept
lists agree after either.
"""

from __future__ import annotations

import subprocess
import sys
from array import array

from pbxfw.compiler.elements import SetElements, interval_text, set_commands
from pbxfw.compiler.feeds import FeedDelta, feed_set_name
from pbxfw.domain.addresses import address_text
from pbxfw.errors import KernelError
from pbxfw.kernel.netlink import ElementOp, send_element_batch

__all__ = ["BATCH_ELEMENTS", "send_feed_changes"]

_NFT_TIMEOUT = 120.0
#: Elements per netlink transaction (a few MB of messages and acknowledgements).
BATCH_ELEMENTS = 50_000


def _keys(values: list[int], version: int) -> list[bytes]:
    """Packed big-endian addresses; IPv4 through ``array`` (a million in C)."""
    if version == 4:
        packed = array("I", values)
        if sys.byteorder == "little":
            packed.byteswap()
        data = packed.tobytes()
        return [data[i : i + 4] for i in range(0, len(data), 4)]
    return [v.to_bytes(16, "big") for v in values]


def _nft(payload: str, netns: str | None) -> None:
    argv = ["nft", "-f", "-"]
    if netns:
        argv = ["ip", "netns", "exec", netns, *argv]
    try:
        result = subprocess.run(
            argv, input=payload, capture_output=True, text=True, timeout=_NFT_TIMEOUT, check=False
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise KernelError(f"cannot run nft for the feed elements: {exc}", payload) from exc
    if result.returncode != 0:
        message = (result.stderr or result.stdout).strip()
        raise KernelError(f"nftables refused the feed elements:\n{message}", payload)


def send_feed_changes(delta: FeedDelta, netns: str | None) -> int:
    """Send one feed's changes (deletions first); returns the elements sent.

    Raises KernelError when the kernel refuses (a set missing: the caller
    reloads the whole table, which carries the kept lists).
    """
    ops: list[ElementOp] = []
    for action, hosts in (("delete", delta.del_hosts), ("add", delta.add_hosts)):
        for v in (4, 6):
            if hosts.get(v):
                keys = _keys(hosts[v], v)
                name = feed_set_name(delta.name, v)
                ops += [
                    ElementOp(action, name, keys[i : i + BATCH_ELEMENTS])
                    for i in range(0, len(keys), BATCH_ELEMENTS)
                ]
    nets = [(p, "delete") for p in delta.del_nets] + [(p, "add") for p in delta.add_nets]
    if ops:
        try:
            # One transaction per BATCH_ELEMENTS: the kernel acknowledges every
            # message of a batch with a copy of it, and a million elements'
            # acknowledgements overflow any socket buffer (ENOBUFS). A feed
            # needs no all-or-nothing: each element is right on its own.
            for op in ops:
                send_element_batch([op], netns)
        except OSError:  # netlink unusable here: nft does the same
            for action, hosts in (("delete", delta.del_hosts), ("add", delta.add_hosts)):
                for v in (4, 6):
                    spans: list[tuple[int, int, int | None]] = [
                        (h, h, None) for h in hosts.get(v, [])
                    ]
                    if spans:
                        plan = SetElements(feed_set_name(delta.name, v), v, spans)
                        nets.insert(0 if action == "delete" else len(nets), (plan, action))
    payload = "".join(
        line + "\n"
        for plan, action in nets
        for line in (
            [f"delete element inet pbxfw {plan.set_name} {{ {_items(plan)} }}"]
            if action == "delete"
            else set_commands(plan, "add", refresh=False)
        )
        if plan.spans
    )
    if payload:
        _nft(payload, netns)
    return delta.count()


def _items(plan: SetElements) -> str:
    v = plan.version
    return ", ".join(
        address_text(a, v) if a == b else interval_text(a, b, v) for a, b, _ in plan.spans
    )
