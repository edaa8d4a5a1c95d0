"""The table that hands new UDP SIP flows to the agent's fingerprint check (issue 18).

nftables cannot look for a text in a payload, so the check is the agent's
(``pbxfw.agent.fingerprint``): a base chain at a priority before pbxfw's
``input`` chain sends the first packet of each new UDP SIP flow to the
NFQUEUE :data:`FINGERPRINT_QUEUE`; the agent reads its headers and answers
drop (and bans the sender) or accept. With no agent bound to the queue the
kernel accepts the packet (``bypass``: fail-open), and the agent sets the
queue's fail-open flag so a full queue accepts too.

Why a table of its own, ``inet sip_fingerprint``, that the agent makes
when it binds the queue and deletes when it stops (docs/nftables.md,
"Scanner fingerprints"): the queue verdict must come from the ``NFQUEUE``
target of x_tables (through nft_compat) where the kernel has no nft
``queue`` expression (``CONFIG_NFT_QUEUE`` is not set in every kernel; it is
not in the lab's), and ``nft`` can load such a rule but not print it back
in a form it can load again. Kept out of ``inet pbxfw``, it never reaches
that table's snapshots (confirm and rollback), its golden text or its
tamper check.

What is queued: UDP to ``sip_port`` in a flow that is ``ct state new`` and
was never decided by pbxfw's ``input`` chain (no flow tag in ``ct mark``: a
flow the allow sets accepted carries one, so a running one-way flow is not
queued again), or untracked (a ``notrack`` rule of pbxfw's ``early`` chain
keeps unsolicited SIP out of the conntrack table): no flow remembers an
untracked packet, so the first one from each source address is queued and
the address is remembered for :data:`SEEN_SECONDS` (the dynamic sets
``seen_v4``/``seen_v6``, at most :data:`SEEN_SIZE` addresses: beyond, every
untracked packet is queued and the queue's fail-open flag bounds the cost).
The agent answers accept at once for never-block sources. Pure: text only.
"""

from __future__ import annotations

from pbxfw.compiler.names import FLOW_MARK_MASK

__all__ = [
    "FINGERPRINT_CHAIN",
    "FINGERPRINT_PRIORITY",
    "FINGERPRINT_QUEUE",
    "FINGERPRINT_TABLE",
    "QUEUE_CHAIN",
    "SEEN_SECONDS",
    "SEEN_SIZE",
    "UNTRACKED_CHAIN",
    "fingerprint_table",
]

#: The NFQUEUE number the agent binds (per network namespace).
FINGERPRINT_QUEUE = 5060
FINGERPRINT_TABLE = "sip_fingerprint"
FINGERPRINT_CHAIN = "new_sip"
#: The chain whose one rule is the NFQUEUE target (added by the agent over netlink).
QUEUE_CHAIN = "to_agent"
#: The chain deciding untracked packets by their source address.
UNTRACKED_CHAIN = "untracked"
#: How long an untracked source stays judged, and how many are remembered.
SEEN_SECONDS = 60
SEEN_SIZE = 65536
#: Before pbxfw's ``input`` chain (``filter - 10``), after conntrack (-200),
#: so ``ct state`` and ``ct mark`` are known.
FINGERPRINT_PRIORITY = "filter - 20"


def fingerprint_table(sip_port: int) -> str:
    """The whole ``table inet sip_fingerprint`` as nft text (without the
    queue rule itself), replacing any table of that name."""
    return "\n".join(
        [
            f"table inet {FINGERPRINT_TABLE}",
            f"delete table inet {FINGERPRINT_TABLE}",
            f"table inet {FINGERPRINT_TABLE} {{",
            '\tcomment "managed by the pbxfw agent: scanner fingerprints"',
            f"\tchain {FINGERPRINT_CHAIN} {{",
            f"\t\ttype filter hook input priority {FINGERPRINT_PRIORITY}; policy accept;",
            f"\t\tudp dport {sip_port} ct state new "
            f"ct mark and {FLOW_MARK_MASK:#010x} == 0x00000000 jump {QUEUE_CHAIN}",
            f"\t\tudp dport {sip_port} ct state untracked jump {UNTRACKED_CHAIN}",
            "\t}",
            *_seen_sets(),
            f"\tchain {UNTRACKED_CHAIN} {{",
            "\t\tip saddr @seen_v4 return",
            "\t\tip6 saddr @seen_v6 return",
            "\t\tadd @seen_v4 { ip saddr }",
            "\t\tadd @seen_v6 { ip6 saddr }",
            f"\t\tjump {QUEUE_CHAIN}",
            "\t}",
            f"\tchain {QUEUE_CHAIN} {{",
            "\t}",
            "}",
            "",
        ]
    )


def _seen_sets() -> list[str]:
    out = []
    for v, kind in ((4, "ipv4_addr"), (6, "ipv6_addr")):
        out += [
            f"\tset seen_v{v} {{",
            f"\t\ttype {kind}",
            f"\t\tsize {SEEN_SIZE}",
            "\t\tflags dynamic, timeout",
            f"\t\ttimeout {SEEN_SECONDS}s",
            "\t}",
        ]
    return out
