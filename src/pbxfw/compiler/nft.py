"""The compiler's public names, as other modules import them.

The compiler is split along its seams: ``names`` (table, set and chain
names, flow-tag constants), ``elements`` (intervals, ban and guard
elements, element commands) and ``ruleset`` (``compile_ruleset``, one
builder per chain). This module keeps ``pbxfw.compiler.nft`` importable
for the kernel adapter and the tests.
"""

from __future__ import annotations

from pbxfw.compiler.elements import (
    BanElement,
    SetElements,
    allow_intervals,
    as_guard_plans,
    compile_ban_elements,
    compile_guard_elements,
    is_host,
    merge_intervals,
    never_block_intervals,
    plan_elements,
    set_commands,
)
from pbxfw.compiler.names import (
    CHAIN_PRIORITY,
    FLOW_CACHE_COMMENT,
    FLOW_CHAIN,
    FLOW_MARK_COMMENT,
    FLOW_MARK_MASK,
    TABLE,
    TABLE_FAMILY,
    allow_set_name,
    ban_set_name,
    guard_set_name,
)
from pbxfw.compiler.ruleset import compile_ruleset, flow_cache_rule, flow_mark, flow_mark_rule

__all__ = [
    "CHAIN_PRIORITY",
    "FLOW_CACHE_COMMENT",
    "FLOW_CHAIN",
    "FLOW_MARK_COMMENT",
    "FLOW_MARK_MASK",
    "TABLE",
    "TABLE_FAMILY",
    "BanElement",
    "SetElements",
    "allow_intervals",
    "allow_set_name",
    "as_guard_plans",
    "ban_set_name",
    "compile_ban_elements",
    "compile_guard_elements",
    "compile_ruleset",
    "flow_cache_rule",
    "flow_mark",
    "flow_mark_rule",
    "guard_set_name",
    "is_host",
    "merge_intervals",
    "never_block_intervals",
    "plan_elements",
    "set_commands",
]
