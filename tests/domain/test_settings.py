"""Settings are validated together; every refusal names the key."""

from __future__ import annotations

import pytest

from pbxfw.domain.settings import (
    IPS_PRESETS,
    MAX_BAN_SECONDS,
    MAX_FINDTIME_SECONDS,
    Settings,
    check_ban_seconds,
    include_path_problem,
)
from pbxfw.errors import ValidationError


def test_defaults_match_the_design() -> None:
    s = Settings()
    assert (s.firewall_enabled, s.ips_enabled) == (False, True)
    assert (s.sip_port, s.tls_port, s.rtp_port_from, s.rtp_port_to) == (5060, 5061, 10000, 10800)
    assert (s.ips_maxretry, s.ips_findtime, s.ips_bantime, s.ips_bantime_max) == (
        10,
        3600,
        86400,
        30 * 86400,
    )
    assert s.cti_ports == [4222, 8222, 8000]


def test_text_values_are_parsed() -> None:
    s = Settings().updated(
        {
            "firewall_enabled": "on",
            "ips_findtime": "10m",
            "ips_bantime": "2h",
            "cti_ports": "4222, 9000",
            "ips_whitelist": "192.0.2.7/24, 2001:db8::1",
        }
    )
    assert s.firewall_enabled is True
    assert (s.ips_findtime, s.ips_bantime) == (600, 7200)
    assert s.cti_ports == [4222, 9000]
    assert s.ips_whitelist == ["192.0.2.0/24", "2001:db8::1/128"]


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"sip_port": "0"}, "sip_port"),
        ({"sip_port": "65536"}, "sip_port"),
        ({"rtp_port_from": "20000"}, "rtp_port_from"),
        ({"firewall_enabled": "maybe"}, "firewall_enabled"),
        ({"ips_findtime": "1y"}, "ips_findtime"),
        ({"ips_whitelist": "10.0.0.300"}, "ips_whitelist"),
        ({"no_such_key": "1"}, "no_such_key"),
        ({"ips_preset": "extreme"}, "ips_preset"),
    ],
)
def test_refusals_name_the_field(changes: dict[str, str], field: str) -> None:
    with pytest.raises(ValidationError) as caught:
        Settings().updated(changes)
    assert caught.value.errors[0].field == field


@pytest.mark.parametrize("preset", sorted(IPS_PRESETS))
def test_presets(preset: str) -> None:
    s = Settings().updated({"ips_preset": preset})
    for key, value in IPS_PRESETS[preset].items():
        assert getattr(s, key) == value


# -- issue 13: strict types, bounds, paths ----------------------------------------------


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"sip_port": True}, "sip_port"),  # was stored as port 1
        ({"sip_port": 5060.0}, "sip_port"),
        ({"sip_port": "5060"}, "sip_port"),
        ({"ips_maxretry": False}, "ips_maxretry"),
        ({"sip_rate_limit": 1.5}, "sip_rate_limit"),
        ({"cti_ports": [True]}, "cti_ports"),
        ({"cti_ports": ["4222"]}, "cti_ports"),
        ({"firewall_enabled": "on"}, "firewall_enabled"),
        ({"ips_enabled": 1}, "ips_enabled"),
        ({"pjsip_reload": "yes"}, "pjsip_reload"),
        ({"log_ssh": 5}, "log_ssh"),
        ({"ips_whitelist": [1]}, "ips_whitelist"),
        ({"ips_findtime": True}, "ips_findtime"),
    ],
)
def test_strict_values_must_have_their_json_type(changes: dict[str, object], field: str) -> None:
    with pytest.raises(ValidationError) as caught:
        Settings().updated(changes, strict=True)
    assert [e.field for e in caught.value.errors] == [field]


def test_strict_mode_keeps_the_documented_text_forms() -> None:
    s = Settings().updated(
        {"ips_findtime": "10m", "cti_ports": "4222,8000", "ips_whitelist": "10.0.0.0/8"},
        strict=True,
    )
    assert (s.ips_findtime, s.cti_ports, s.ips_whitelist) == (600, [4222, 8000], ["10.0.0.0/8"])


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"sip_port": True}, "sip_port"),  # a boolean is never a number, in text mode too
        ({"ips_enabled": 1}, "ips_enabled"),
        ({"sip_port": "5060.0"}, "sip_port"),
        ({"ips_maxretry": "ten"}, "ips_maxretry"),
        ({"cti_ports": "4222,x"}, "cti_ports"),
    ],
)
def test_text_mode_refuses_bad_text_and_wrong_types(changes: dict[str, object], field: str) -> None:
    with pytest.raises(ValidationError) as caught:
        Settings().updated(changes)
    assert [e.field for e in caught.value.errors] == [field]


@pytest.mark.parametrize(
    ("key", "longest"),
    [
        ("ips_findtime", MAX_FINDTIME_SECONDS),
        ("ips_bantime_max", MAX_BAN_SECONDS),
    ],
)
def test_durations_are_bounded(key: str, longest: int) -> None:
    assert getattr(Settings().updated({key: str(longest)}), key) == longest
    for too_long in (longest + 1, "99999999999999999999w", "1" * 5000):
        with pytest.raises(ValidationError) as caught:
            Settings().updated({key: too_long})
        assert caught.value.errors[0].field == key
        assert "days" in caught.value.errors[0].message or "years" in caught.value.errors[0].message


def test_bantime_is_bounded_by_ten_years_and_by_bantime_max() -> None:
    s = Settings().updated({"ips_bantime_max": "3650d", "ips_bantime": "3650d"})
    assert s.ips_bantime == MAX_BAN_SECONDS == 3650 * 86400
    with pytest.raises(ValidationError, match="ips_bantime"):
        Settings().updated({"ips_bantime_max": "3650d", "ips_bantime": "3651d"})


def test_a_ban_length_is_bounded() -> None:
    assert check_ban_seconds(MAX_BAN_SECONDS) == MAX_BAN_SECONDS
    for bad in (0, MAX_BAN_SECONDS + 1, 253402300800, 10**30, True, 1.0):
        with pytest.raises(ValidationError) as caught:
            check_ban_seconds(bad)
        assert caught.value.errors[0].field == "seconds"


@pytest.mark.parametrize(
    "key",
    [
        "log_asterisk_security",
        "log_asterisk_messages",
        "log_ssh",
        "log_web",
        "asterisk_config_dir",
        "external_address",
        "pjsip_include_path",
    ],
)
@pytest.mark.parametrize(
    "bad", ["/tmp/x\x00y", "/tmp/x\ny", "/tmp/\x1b[31m", "/tmp/\u202ex", "/x\ud800"]
)
def test_text_settings_refuse_control_characters(key: str, bad: str) -> None:
    with pytest.raises(ValidationError) as caught:
        Settings().updated({key: bad})
    assert caught.value.errors[0].field == key


@pytest.mark.parametrize("key", ["log_ssh", "asterisk_config_dir", "pjsip_include_path"])
def test_paths_are_absolute(key: str) -> None:
    with pytest.raises(ValidationError, match="absolute path") as caught:
        Settings().updated({key: "var/log/auth.log"})
    assert caught.value.errors[0].field == key


@pytest.mark.parametrize(
    ("path", "rule"),
    [
        ("/etc/passwd", "directly in asterisk_config_dir"),
        ("/etc/asterisk/sub/x.conf", "directly in asterisk_config_dir"),
        ("/etc/asterisk/../passwd.conf", "plainly"),
        ("/etc/asterisk//x.conf", "plainly"),
        ("/etc/asterisk/./x.conf", "plainly"),
        ("/etc/asterisk/x.sh", ".conf file"),
        ("/etc/asterisk/.hidden.conf", ".conf file"),
        ("/etc/asterisk/", "plainly"),
    ],
)
def test_the_pjsip_include_lies_directly_in_the_asterisk_folder(path: str, rule: str) -> None:
    assert include_path_problem("/etc/asterisk/pbxfw_pjsip_nat.conf", "/etc/asterisk") is None
    with pytest.raises(ValidationError, match=rule) as caught:
        Settings().updated({"pjsip_include_path": path})
    assert caught.value.errors[0].field == "pjsip_include_path"


def test_the_include_needs_the_asterisk_folder_and_moves_with_it() -> None:
    with pytest.raises(ValidationError, match="asterisk_config_dir first"):
        Settings().updated({"asterisk_config_dir": "", "pjsip_include_path": "/x/a.conf"})
    s = Settings().updated({"pjsip_include_path": "/etc/asterisk/nat.conf"})
    with pytest.raises(ValidationError) as caught:
        s.updated({"asterisk_config_dir": "/opt/asterisk/etc"})
    assert caught.value.errors[0].field == "asterisk_config_dir"  # the setting changed
    moved = s.updated(
        {
            "asterisk_config_dir": "/opt/asterisk/etc",
            "pjsip_include_path": "/opt/asterisk/etc/n.conf",
        }
    )
    assert moved.pjsip_include_path == "/opt/asterisk/etc/n.conf"


def test_external_address_is_an_address_or_a_host_name() -> None:
    assert Settings().updated({"external_address": "pbx.example.com"}).external_address
    with pytest.raises(ValidationError) as caught:
        Settings().updated({"external_address": "pbx example"})
    assert caught.value.errors[0].field == "external_address"


def test_stored_values_that_break_a_newer_rule_take_their_default() -> None:
    """An older pbxfw stored these; reading them never fails."""
    settings, ignored = Settings.from_stored(
        {
            "pjsip_include_path": "/etc/passwd",
            "sip_port": True,
            "ips_bantime_max": 10**12,
            "ips_bantime": 40 * 86400,  # above the default ips_bantime_max left
            "log_ssh": "/var/log/secure",
            "gone_setting": 1,
        }
    )
    assert settings.pjsip_include_path == "" and settings.sip_port == 5060
    assert (settings.ips_bantime, settings.ips_bantime_max) == (86400, 30 * 86400)
    assert settings.log_ssh == "/var/log/secure"  # the valid ones are kept
    assert sorted(e.field for e in ignored) == [
        "ips_bantime",
        "ips_bantime_max",
        "pjsip_include_path",
        "sip_port",
    ]
