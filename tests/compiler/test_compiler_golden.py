"""Golden files: configuration in, ruleset text out (tests/compiler/golden/*.nft).

A change of the compiler shows as a diff of these files. To accept a change
on purpose: ``PBXFW_UPDATE_GOLDEN=1 pytest tests/compiler`` and review the
diff. A missing golden file fails (it is written only on that request), so a
case whose file was never committed cannot pass unseen; a golden file
without a case fails too. That nft loads every golden file:
tests/kernel/test_golden_loads.py.
"""

from __future__ import annotations

import ipaddress
import os
from collections.abc import Callable
from pathlib import Path

import pytest

from pbxfw.compiler import BanElement, compile_ban_elements, compile_ruleset
from pbxfw.compiler.nft import as_guard_plans, plan_elements
from pbxfw.domain.configuration import Configuration
from pbxfw.domain.countries import CountryRule
from pbxfw.domain.geo import CountryTable
from pbxfw.domain.networks import Verdict, permanent_networks
from pbxfw.domain.services import BUILTIN_KEYS, CustomService
from pbxfw.domain.settings import Settings
from tests.kernel.configs import NASTY_NAMES, lab_config, network

GOLDEN = Path(__file__).parent / "golden"
UPDATE = os.environ.get("PBXFW_UPDATE_GOLDEN") == "1"


def _ban(subnet: str, jail: str, seconds: int | None) -> BanElement:
    return BanElement(ipaddress.ip_network(subnet), jail, seconds)


BANS = (
    _ban("192.0.2.66/32", "asterisk", 3600),
    _ban("192.0.2.0/24", "asterisk", 600),  # covers the /32: one element, 3600 s
    _ban("198.18.0.0/15", "recidive", None),
    _ban("2001:db8:dead::/48", "ssh", 86400),
    _ban("2001:db8:beef::1/128", "manual", 30 * 86400),
    _ban("10.77.1.5/32", "asterisk", 0),  # already over: left out
)


def _early_config() -> Configuration:
    """Issue 18: a country blocked for every service (192.0.2.0/24, 2001:db8:c0::/48)
    with an explicit network inside it; the flood protection on."""
    config = lab_config(sip_port=5070, sip_notrack=True)
    keys = config.service_keys()
    everything = CountryRule("Nothing", ("CN",), dict.fromkeys(keys, Verdict.BLOCK), id=1)
    some = CountryRule("Some", ("RU",), {"sip": Verdict.BLOCK}, id=2)  # not early
    table = CountryTable(
        [_span("192.0.2.0/24", "CN"), _span("192.0.3.0/24", "RU")],
        [_span("2001:db8:c0::/48", "CN")],
    )
    nets = (*config.networks, network("Partner in CN", "192.0.2.128/26", "sip"))
    return Configuration(nets, config.custom_services, config.settings, (everything, some), table)


def _span(cidr: str, code: str) -> tuple[int, int, str]:
    n = ipaddress.ip_network(cidr)
    return int(n.network_address), int(n.broadcast_address), code


CASES: dict[str, Callable[[], tuple[Configuration, tuple[BanElement, ...]]]] = {
    "early": lambda: (_early_config(), BANS),
    # A fresh install: firewall off, IPS on, no bans.
    "fresh_install": lambda: (Configuration(permanent_networks()), ()),
    # Nested networks, IPv4 and IPv6, nasty names, a custom service.
    "nested": lambda: (lab_config(), ()),
    "bans": lambda: (lab_config(ips_whitelist="192.0.2.128/25,2001:db8:beef::/64"), BANS),
    "rate_limit": lambda: (lab_config(sip_rate_limit=50, sip_port=5070, tls_port=5071), ()),
    "firewall_off": lambda: (lab_config(firewall_enabled=False, sip_rate_limit=20), BANS),
    "all_off": lambda: (lab_config(firewall_enabled=False, ips_enabled=False), BANS),
    # A custom service sharing port 443 with web and 5060/udp with sip.
    "shared_ports": lambda: (
        Configuration(
            (
                *permanent_networks((*BUILTIN_KEYS, "zz_extra")),
                network("Office", "10.0.0.0/8", "*", (*BUILTIN_KEYS, "zz_extra")),
            ),
            (CustomService.create("zz_extra", "Extra", tcp="443,7000-7010", udp="5060"),),
            Settings(firewall_enabled=True),
        ),
        (),
    ),
}


def check_golden(path: Path, text: str, *, update: bool = False) -> None:
    """``text`` equals the golden file ``path``; with ``update``, write it first.

    A missing file is a failure, never written silently: the golden file is
    the reviewed record of the output.
    """
    if update:
        path.write_text(text)
    if not path.exists():
        pytest.fail(
            f"{path} is missing: create it with PBXFW_UPDATE_GOLDEN=1 pytest tests/compiler, "
            "review it and commit it"
        )
    assert text == path.read_text(), f"{path} differs; review and regenerate if intended"


@pytest.mark.parametrize("case", sorted(CASES))
def test_golden(case: str) -> None:
    config, bans = CASES[case]()
    check_golden(GOLDEN / f"{case}.nft", compile_ruleset(config, bans), update=UPDATE)


def test_a_missing_golden_file_fails_and_is_not_written(tmp_path: Path) -> None:
    path = tmp_path / "new_case.nft"
    with pytest.raises(pytest.fail.Exception, match=r"new_case\.nft is missing"):
        check_golden(path, "table inet pbxfw {}\n")
    assert not path.exists()
    check_golden(path, "table inet pbxfw {}\n", update=True)
    assert path.read_text() == "table inet pbxfw {}\n"


def test_every_golden_file_has_a_case() -> None:
    assert sorted(p.stem for p in GOLDEN.glob("*.nft")) == sorted(CASES)


@pytest.mark.parametrize("case", sorted(CASES))
def test_deterministic_and_order_free(case: str) -> None:
    config, bans = CASES[case]()
    shuffled = Configuration(
        tuple(reversed(config.networks)),
        config.custom_services,
        config.settings,
        tuple(reversed(config.country_rules)),
        config.countries,
    )
    assert compile_ruleset(config, bans) == compile_ruleset(shuffled, tuple(reversed(bans)))


def test_no_administrator_text_reaches_the_ruleset() -> None:
    text = compile_ruleset(lab_config(), BANS)
    for name in NASTY_NAMES:
        assert name not in text
    # Every double quote in the output belongs to a fixed comment of ours.
    assert text.count('"') % 2 == 0
    assert "evil" not in text and "$var" not in text


def test_unknown_jail_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown jail"):
        compile_ruleset(lab_config(), [_ban("192.0.2.1/32", "nope", 10)])


def test_ban_element_commands() -> None:
    bans = [_ban("192.0.2.1/32", "asterisk", 3600), _ban("2001:db8::/64", "manual", None)]
    assert compile_ban_elements(bans) == (
        "add element inet pbxfw ban_asterisk_v4 { 192.0.2.1 }\n"
        "delete element inet pbxfw ban_asterisk_v4 { 192.0.2.1 }\n"
        "add element inet pbxfw ban_asterisk_v4 { 192.0.2.1 timeout 3600s }\n"
        "add element inet pbxfw ban_manual_net_v6 { 2001:db8::/64 }\n"
        "delete element inet pbxfw ban_manual_net_v6 { 2001:db8::/64 }\n"
        "add element inet pbxfw ban_manual_net_v6 { 2001:db8::/64 }\n"
    )
    assert compile_ban_elements(bans[:1], action="delete") == (
        "add element inet pbxfw ban_asterisk_v4 { 192.0.2.1 }\n"
        "delete element inet pbxfw ban_asterisk_v4 { 192.0.2.1 }\n"
    )
    assert compile_ban_elements([]) == ""


def test_ban_element_commands_batch_per_set() -> None:
    """Many elements of one set are one command per step, each element once
    (a second delete of it would fail), with its longest lifetime; without
    ``refresh`` (known absent) only the add with the timeouts."""
    bans = [
        _ban("192.0.2.2/32", "asterisk", 60),
        _ban("192.0.2.1/32", "asterisk", 3600),
        _ban("192.0.2.2/32", "asterisk", 600),
    ]
    assert compile_ban_elements(bans) == (
        "add element inet pbxfw ban_asterisk_v4 { 192.0.2.1, 192.0.2.2 }\n"
        "delete element inet pbxfw ban_asterisk_v4 { 192.0.2.1, 192.0.2.2 }\n"
        "add element inet pbxfw ban_asterisk_v4 { 192.0.2.1 timeout 3600s, 192.0.2.2 timeout 600s }\n"
    )
    assert compile_ban_elements(bans, refresh=False) == (
        "add element inet pbxfw ban_asterisk_v4 { 192.0.2.1 timeout 3600s, 192.0.2.2 timeout 600s }\n"
    )


def test_guard_plans_from_the_jail_plans_equal_planning_the_guard() -> None:
    bans = [
        _ban("192.0.2.2/32", "asterisk", 60),
        _ban("192.0.2.2/32", "ssh", 600),
        _ban("192.0.2.9/32", "ssh", None),
        _ban("198.51.100.0/24", "manual", 30),
        _ban("2001:db8::1/128", "web", 5),
    ]
    assert as_guard_plans(plan_elements(bans)) == plan_elements(bans, guard=True)
    one_jail = [b for b in bans if b.jail == "ssh"]
    assert as_guard_plans(plan_elements(one_jail)) == plan_elements(one_jail, guard=True)
