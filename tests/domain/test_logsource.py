"""Log settings name a file or journal entries (domain.logsource, issue 15 "The journal")."""

from __future__ import annotations

import pytest

from pbxfw.domain.logsource import is_journal, journal_source_problem, parse_journal
from pbxfw.domain.settings import Settings
from pbxfw.errors import ValidationError

LOG_KEYS = ["log_ssh", "log_web", "log_asterisk_messages", "log_asterisk_security"]


@pytest.mark.parametrize(
    ("value", "matches"),
    [
        (
            "journal:ssh.service",
            [("_SYSTEMD_UNIT", "ssh.service"), ("_SYSTEMD_UNIT", "sshd.service")],
        ),
        (
            "journal:sshd.service",
            [("_SYSTEMD_UNIT", "ssh.service"), ("_SYSTEMD_UNIT", "sshd.service")],
        ),
        ("journal:asterisk.service", [("_SYSTEMD_UNIT", "asterisk.service")]),
        ("journal:SYSLOG_IDENTIFIER=sshd", [("SYSLOG_IDENTIFIER", "sshd")]),
        (
            "journal:SYSLOG_IDENTIFIER=sshd SYSLOG_IDENTIFIER=sshd-session",
            [("SYSLOG_IDENTIFIER", "sshd"), ("SYSLOG_IDENTIFIER", "sshd-session")],
        ),
        (
            "journal:nginx.service _COMM=nginx",
            [("_SYSTEMD_UNIT", "nginx.service"), ("_COMM", "nginx")],
        ),
        ("journal:getty@tty1.service", [("_SYSTEMD_UNIT", "getty@tty1.service")]),
    ],
)
def test_journal_values_become_journalctl_matches(
    value: str, matches: list[tuple[str, str]]
) -> None:
    source = parse_journal(value)
    assert list(source.matches) == matches
    assert source.arguments() == [f"{f}={v}" for f, v in matches]
    assert is_journal(value)


@pytest.mark.parametrize("key", LOG_KEYS)
@pytest.mark.parametrize(
    "value", ["journal:ssh.service", "journal:SYSLOG_IDENTIFIER=sshd", "/var/log/auth.log", ""]
)
def test_every_log_setting_takes_a_file_or_the_journal(key: str, value: str) -> None:
    assert getattr(Settings().updated({key: value}), key) == value


@pytest.mark.parametrize(
    ("value", "says"),
    [
        ("journal:", "name what to read after journal:"),
        ("journal: ", "name what to read after journal:"),
        ("journal:ssh.service ", "separate the terms"),
        ("journal:ssh.service  _COMM=sshd", "separate the terms"),
        ("journal:ssh", "neither a unit name"),
        ("journal:../ssh.service", "neither a unit name"),
        ("journal:ssh.service;rm", "neither a unit name"),
        ("journal:--all", "neither a unit name"),
        ("journal:syslog_identifier=sshd", "not a journal field name"),
        ("journal:__CURSOR=x", "not a journal field name"),
        ("journal:-o=cat", "not a journal field name"),
        ("journal:SYSLOG_IDENTIFIER=", "needs a value"),
        ("journal:SYSLOG_IDENTIFIER=ss\u00a0hd", "control or invisible"),
        ("journal:SYSLOG_IDENTIFIER=" + "x" * 2000, "longer than"),
    ],
)
def test_bad_journal_values_are_refused_naming_the_setting(value: str, says: str) -> None:
    problem = journal_source_problem(value)
    assert problem is not None and says in problem
    for key in LOG_KEYS:
        with pytest.raises(ValidationError) as caught:
            Settings().updated({key: value})
        error = caught.value.errors[0]
        assert error.field == key
        assert says in error.message
    with pytest.raises(ValueError) as refused:
        parse_journal(value)
    assert str(refused.value) == problem


@pytest.mark.parametrize("value", ["journal:ssh.service\n", "journal:\x00", "journal:\x1b[2J"])
def test_journal_values_refuse_control_characters(value: str) -> None:
    with pytest.raises(ValidationError) as caught:
        Settings().updated({"log_ssh": value})
    assert caught.value.errors[0].field == "log_ssh"
    assert "control" in caught.value.errors[0].message


def test_a_relative_path_still_names_both_forms() -> None:
    with pytest.raises(ValidationError) as caught:
        Settings().updated({"log_web": "error.log"}, strict=True)
    error = caught.value.errors[0]
    assert error.field == "log_web"
    assert "absolute path" in error.message


def test_the_wrong_type_names_both_forms() -> None:
    with pytest.raises(ValidationError) as caught:
        Settings().updated({"log_ssh": 5}, strict=True)
    assert "journal:ssh.service" in caught.value.errors[0].message
