"""Ban elements through nf_tables netlink (pbxfw.kernel.netlink), in a namespace."""

from __future__ import annotations

import ipaddress
from collections.abc import Iterator

import pytest

from pbxfw.compiler import BanElement, compile_ruleset
from pbxfw.errors import KernelError
from pbxfw.kernel import NftBackend
from pbxfw.kernel.netlink import ElementOp, flow_tag_rules, has_element, send_element_batch

from .configs import lab_config
from .lab import Lab, require_kernel

pytestmark = pytest.mark.kernel


@pytest.fixture
def ns() -> Iterator[tuple[Lab, str]]:
    require_kernel()
    with Lab("netlink") as lab:
        name = lab.namespace("pbx")
        NftBackend(name).apply(compile_ruleset(lab_config()))
        yield lab, name


def _listed(lab: Lab, ns: str, name: str) -> str:
    return lab.nft(ns, "list", "set", "inet", "pbxfw", name)


def test_elements_land_with_their_timeouts_in_both_families(ns: tuple[Lab, str]) -> None:
    lab, name = ns
    v4 = [ipaddress.ip_address(a).packed for a in ("192.0.2.1", "192.0.2.2")]
    v6 = [ipaddress.ip_address("2001:db8::7").packed]
    send_element_batch(
        [
            ElementOp("add", "ban_ssh_v4", v4, (60_000, None)),
            ElementOp("add", "ban_ssh_v6", v6, (5_000,)),
        ],
        name,
    )
    listed = _listed(lab, name, "ban_ssh_v4")
    assert "192.0.2.1 timeout 1m" in listed and "192.0.2.2 }" in listed  # no timeout: no end
    assert "2001:db8::7 timeout 5s" in _listed(lab, name, "ban_ssh_v6")


def test_a_refused_batch_changes_nothing_and_names_the_reason(ns: tuple[Lab, str]) -> None:
    lab, name = ns
    key = [ipaddress.ip_address("198.51.100.1").packed]
    with pytest.raises(KernelError, match="ENOENT"):
        send_element_batch(
            [ElementOp("add", "ban_ssh_v4", key), ElementOp("add", "no_such_set", key)], name
        )
    assert "198.51.100.1" not in _listed(lab, name, "ban_ssh_v4")
    with pytest.raises(KernelError, match="ENOENT"):  # absent element
        send_element_batch([ElementOp("delete", "ban_ssh_v4", key)], name)


def test_many_elements_are_split_into_messages_of_one_transaction(ns: tuple[Lab, str]) -> None:
    """5,000 addresses: more than one message's worth (an attribute is ≤ 64 KiB)."""
    lab, name = ns
    hosts = [ipaddress.IPv4Network((0x0A000000 + i, 32)) for i in range(5000)]
    backend = NftBackend(name)
    backend.add([BanElement(h, "manual", 600) for h in hosts], refresh=False)
    backend.commit()
    assert _listed(lab, name, "ban_manual_v4").count("timeout 10m") == 5000
    assert _listed(lab, name, "banned_v4").count("timeout 10m") == 5000
    backend.delete([BanElement(h, "manual") for h in hosts])
    backend.commit()
    assert "10.0." not in _listed(lab, name, "ban_manual_v4")
    assert "10.0." not in _listed(lab, name, "banned_v4")


def test_has_element_asks_the_kernel_for_one_element(ns: tuple[Lab, str]) -> None:
    _, name = ns
    key = ipaddress.ip_address("203.0.113.5").packed
    assert not has_element("ban_web_v4", key, name)
    send_element_batch([ElementOp("add", "ban_web_v4", [key], (60_000,))], name)
    assert has_element("ban_web_v4", key, name)
    assert not has_element("no_such_set", key, name)  # the kernel says ENOENT for both


def test_flow_tag_rules_are_found_and_a_stale_read_is_refused(ns: tuple[Lab, str]) -> None:
    lab, name = ns
    rules = flow_tag_rules(name)
    assert rules is not None
    listed = lab.nft(name, "list", "chain", "inet", "pbxfw", "input")
    assert f"ct mark {rules.tag:#010x}/16 accept" in listed
    send_element_batch([], name, retag=(rules, 0x0C0C0000))
    moved = flow_tag_rules(name)
    assert moved is not None and moved.tag == 0x0C0C0000
    assert (moved.cache_handle, moved.mark_handle) == (rules.cache_handle, rules.mark_handle)
    assert "ct mark set ct mark & 0x0c0cffff | 0x0c0c0000 accept" in lab.nft(
        name, "list", "chain", "inet", "pbxfw", "flow_allowed"
    )
    key = ipaddress.ip_address("192.0.2.77").packed
    with pytest.raises(KernelError, match="the ruleset changed"):
        send_element_batch([ElementOp("add", "banned_v4", [key])], name, retag=(rules, 0x0D0D0000))
    assert not has_element("banned_v4", key, name)  # nothing of the batch landed


def test_no_flow_tag_rules_without_a_flow_cache(ns: tuple[Lab, str]) -> None:
    _lab, name = ns
    NftBackend(name).apply(compile_ruleset(lab_config(firewall_enabled=False)))
    assert flow_tag_rules(name) is None
    NftBackend(name).delete_table()
    assert flow_tag_rules(name) is None
