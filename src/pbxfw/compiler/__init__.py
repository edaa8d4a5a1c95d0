"""pbxfw.compiler: the pure configuration → nftables ruleset compiler.

No I/O, no clock: ``compile_ruleset`` turns a Configuration (and the active
bans) into the text of the one table pbxfw owns; ``compile_ban_elements``
gives the incremental element commands the IPS agent sends between applies.
"""

from pbxfw.compiler.nft import (
    CHAIN_PRIORITY,
    TABLE,
    TABLE_FAMILY,
    BanElement,
    allow_intervals,
    allow_set_name,
    ban_set_name,
    compile_ban_elements,
    compile_guard_elements,
    compile_ruleset,
    guard_set_name,
    is_host,
    merge_intervals,
    never_block_intervals,
)

__all__ = [
    "CHAIN_PRIORITY",
    "TABLE",
    "TABLE_FAMILY",
    "BanElement",
    "allow_intervals",
    "allow_set_name",
    "ban_set_name",
    "compile_ban_elements",
    "compile_guard_elements",
    "compile_ruleset",
    "guard_set_name",
    "is_host",
    "merge_intervals",
    "never_block_intervals",
]
