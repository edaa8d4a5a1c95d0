"""The rule tables drive the triggers: a row added to a grammar's TABLE is
searched for per line and by the whole-file search without another edit."""

from __future__ import annotations

import pytest

from pbxfw.ips.grammars import ALL_TRIGGERS, SCAN_TRIGGERS, TRIGGERS, asterisk, ssh, web


@pytest.mark.parametrize(
    ("kinds", "module"),
    [(("asterisk_messages", "asterisk_security"), asterisk), (("ssh",), ssh), (("web",), web)],
)
def test_every_row_trigger_is_a_trigger_of_its_kinds(
    kinds: tuple[str, ...], module: object
) -> None:
    table = module.TABLE  # type: ignore[attr-defined]
    assert table
    for rule in table:
        assert rule.triggers, rule
        for trigger in rule.triggers:
            assert trigger.isascii()  # scan_bytes relies on it
            assert trigger in ALL_TRIGGERS
            for kind in kinds:
                assert trigger in TRIGGERS[kind]


def test_every_asterisk_level_in_the_table_has_a_coarse_trigger() -> None:
    levels = {rule.level for rule in asterisk.TABLE}
    assert levels == {"NOTICE", "SECURITY"}
    assert set(SCAN_TRIGGERS["asterisk_messages"]) == {'Severity="Error"', "NOTICE"}


def test_asterisk_rows_name_their_modules_and_events() -> None:
    for rule in asterisk.TABLE:
        assert rule.modules and all(m.endswith(".c") and "/" not in m for m in rule.modules)
        assert rule.event and rule.jail in ("asterisk", "ami")
        assert (rule.pattern is None) != (rule.parse is asterisk._match), rule
