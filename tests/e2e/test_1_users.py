"""The accounts a real Asterisk 22 writes for real attacks, as pbxfw reads them
(``Failure.user``, the dashboard's top extensions): svcrack's wrong password
for an extension, and SIPp's enumeration of extensions that do not exist."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from pbxfw.ips.recognisers import Recogniser

from .conftest import INET_SELFTEST, PBX_WAN, PbxLab
from .monitor import LogLine
from .test_1_lab import watch
from .tools import Sipp, svcrack

pytestmark = pytest.mark.e2e


def accounts(lines: list[LogLine]) -> list[tuple[str, str, str]]:
    """(log file, jail, user) of each failure pbxfw recognises in ``lines``."""
    found: list[tuple[str, str, str]] = []
    for file in ("messages", "security_log"):
        recogniser = Recogniser(None, file=file, reference=datetime.now(UTC))
        for line in lines:
            if line.file == file:
                failure = recogniser.recognise(line.text)
                if failure is not None:
                    assert str(failure.host) == INET_SELFTEST, line.text
                    found.append((file, failure.jail, failure.user))
    return found


def test_a_wrong_password_names_the_extension_in_both_logs(pbx_lab: PbxLab) -> None:
    with watch(pbx_lab) as logs:
        run = svcrack(
            pbx_lab.inet,
            INET_SELFTEST,
            PBX_WAN,
            "102",
            ["wrong-1"],
            pbx_lab.workdir,
            name="users-svcrack",
        ).wait()
        assert run.returncode is not None
        assert logs.wait_for(
            lambda lines: sum(1 for x in lines if x.address == INET_SELFTEST and x.is_failure) >= 1,
            3,
        )
        lines = logs.from_address(INET_SELFTEST)
    assert sorted(accounts(lines)) == [
        ("messages", "asterisk", "102"),
        ("security_log", "asterisk", "102"),
    ], [x.text for x in lines]


def test_an_enumeration_names_each_extension_tried(pbx_lab: PbxLab) -> None:
    with watch(pbx_lab) as logs:
        sipp = Sipp(pbx_lab.inet, INET_SELFTEST, PBX_WAN, pbx_lab.workdir)
        run = sipp.enumerate("users-enumerate", ["904", "905"], rate=10).wait()
        assert run.returncode == 0, run.output[-2000:]
        assert logs.wait_for(
            lambda lines: sum(1 for x in lines if x.address == INET_SELFTEST) >= 4, 3
        )
        lines = logs.from_address(INET_SELFTEST)
    assert sorted(accounts(lines)) == [
        ("messages", "asterisk", "904"),
        ("messages", "asterisk", "905"),
        ("security_log", "asterisk", "904"),
        ("security_log", "asterisk", "905"),
    ], [x.text for x in lines]
