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
queued again), or untracked (a ``notrack`` rule elsewhere: each such packet
is queued, as no flow remembers it). The agent answers accept at once for
never-block sources. Pure: text only.
"""

from __future__ import annotations

from pbxfw.compiler.names import FLOW_MARK_MASK

__all__ = [
    "FINGERPRINT_CHAIN",
    "FINGERPRINT_PRIORITY",
    "FINGERPRINT_QUEUE",
    "FINGERPRINT_TABLE",
    "QUEUE_CHAIN",
    "fingerprint_table",
]

#: The NFQUEUE number the agent binds (per network namespace).
FINGERPRINT_QUEUE = 5060
FINGERPRINT_TABLE = "sip_fingerprint"
FINGERPRINT_CHAIN = "new_sip"
#: The chain whose one rule is the NFQUEUE target (added by the agent over netlink).
QUEUE_CHAIN = "to_agent"
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
            f"\t\tudp dport {sip_port} ct state untracked jump {QUEUE_CHAIN}",
            "\t}",
            f"\tchain {QUEUE_CHAIN} {{",
            "\t}",
            "}",
            "",
        ]
    )
