"""Settings are validated together; every refusal names the key."""

from __future__ import annotations

import pytest

from pbxfw.domain.settings import IPS_PRESETS, Settings
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
