"""The lab on its own, no pbxfw: real phones register, real attacks leave the
log lines pbxfw reads, a flood reaches Asterisk at full rate."""

from __future__ import annotations

import pytest

from .conftest import INET_SELFTEST, OFFICE_SELFTEST, PBX_LAN, PBX_WAN, PbxLab
from .monitor import LogWatcher
from .pbx import EXTENSIONS
from .summary import SUMMARY
from .tools import Sipp, office_phones, registrations_ok, svcrack

pytestmark = pytest.mark.e2e


def watch(pbx_lab: PbxLab) -> LogWatcher:
    a = pbx_lab.asterisk
    return LogWatcher({name: a.log(name) for name in a.LOGS})


def test_twenty_phones_register(pbx_lab: PbxLab) -> None:
    with watch(pbx_lab) as logs:
        sipp = Sipp(pbx_lab.office, OFFICE_SELFTEST, PBX_LAN, pbx_lab.workdir)
        run = sipp.register(
            "selftest-register", office_phones(), loops=2, interval_ms=1000, rate=20
        ).wait()
        ok = registrations_ok(run)
        assert run.returncode == 0, run.output[-3000:]
        assert sorted(ok) == sorted(EXTENSIONS * 2)
        assert pbx_lab.asterisk.registered() >= set(EXTENSIONS)
        assert logs.wait_for(
            lambda lines: (
                sum(
                    1 for x in lines if x.event == "SuccessfulAuth" and x.address == OFFICE_SELFTEST
                )
                == 40
            ),
            3,
        )
        assert not [x for x in logs.from_address(OFFICE_SELFTEST) if x.is_failure]
    SUMMARY.fact(
        "lab self-test", f"20 phones registered twice without a firewall in {run.seconds:.1f} s"
    )


def test_wrong_password_writes_one_line_in_each_log(pbx_lab: PbxLab) -> None:
    with watch(pbx_lab) as logs:
        run = svcrack(
            pbx_lab.inet,
            INET_SELFTEST,
            PBX_WAN,
            "101",
            ["wrong-1"],
            pbx_lab.workdir,
            name="selftest-svcrack",
        ).wait()
        assert run.returncode is not None
        lines = logs.from_address(INET_SELFTEST)
    notices = [x for x in lines if x.file == "messages"]
    security = [x for x in lines if x.file == "security_log" and x.is_failure]
    assert len(notices) == 1, (lines, run.output[-3000:])
    assert "Request 'REGISTER' from" in notices[0].text
    assert notices[0].text.endswith("- Failed to authenticate")
    assert len(security) == 1 and security[0].event == "ChallengeResponseFailed"
    # the same failure: the NOTICE's call-id is the event's SessionID
    callid = notices[0].text.split("(callid: ", 1)[1].split(")", 1)[0]
    assert f'SessionID="{callid}"' in security[0].text
    # a normal challenge comes first, and it is not a failure
    assert next(x.event for x in lines if x.file == "security_log") == "ChallengeSent"


def test_enumeration_writes_invalid_account(pbx_lab: PbxLab) -> None:
    with watch(pbx_lab) as logs:
        sipp = Sipp(pbx_lab.inet, INET_SELFTEST, PBX_WAN, pbx_lab.workdir)
        run = sipp.enumerate("selftest-enumerate", ["901", "902", "903"], rate=10).wait()
        assert run.returncode == 0, run.output[-2000:]
        assert logs.wait_for(
            lambda lines: sum(1 for x in lines if x.address == INET_SELFTEST) >= 6, 3
        )
        lines = logs.from_address(INET_SELFTEST)
    assert sum(1 for x in lines if x.event == "InvalidAccountID") == 3
    assert sum(1 for x in lines if "No matching endpoint found" in x.text) == 3


def test_flood_reaches_asterisk_unfiltered(pbx_lab: PbxLab) -> None:
    """The baseline of the rate-limit test: without pbxfw, all of a 500/s flood arrives."""
    with watch(pbx_lab) as logs:
        sipp = Sipp(pbx_lab.inet, INET_SELFTEST, PBX_WAN, pbx_lab.workdir)
        run = sipp.flood("selftest-flood", "101", rate=500, count=500).wait()
        assert run.returncode == 0, run.output[-2000:]

        def challenged(lines: list) -> int:  # type: ignore[type-arg]
            return sum(
                1 for x in lines if x.address == INET_SELFTEST and x.event == "ChallengeSent"
            )

        logs.wait_for(lambda lines: challenged(lines) >= 500, 5)
        reached = challenged(logs.snapshot())
    assert reached >= 495  # UDP on a veth: nothing lost
    SUMMARY.fact(
        "flood without pbxfw",
        f"{reached} of 500 REGISTERs sent in {run.seconds:.1f} s reached Asterisk",
    )
