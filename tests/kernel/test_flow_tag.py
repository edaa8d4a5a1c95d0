"""When NftBackend deletes the conntrack entries of a flow tag (no kernel:
the netlink calls are recorded). The packets themselves: test_packets.py."""

from __future__ import annotations

import ipaddress
import itertools

import pytest

from pbxfw.compiler import BanElement
from pbxfw.kernel import NftBackend
from pbxfw.kernel import nft as nft_module
from pbxfw.kernel.netlink import FlowTagRules

BAN = BanElement(ipaddress.ip_network("192.0.2.9/32"), "asterisk", 60)


class Kernel:
    """The running table's flow-tag rules and a log of the netlink calls."""

    def __init__(self) -> None:
        self.generation = 7
        self.tag = 0x00010000
        self.calls: list[str] = []

    def rules(self, netns: str | None = None) -> FlowTagRules:
        return FlowTagRules(self.generation, 11, 12, self.tag)

    def forget(self, tag: int, netns: str | None = None) -> None:
        self.calls.append(f"forget {tag:#x}")

    def send(self, ops: object, netns: str | None = None, *, retag: object = None) -> None:
        if retag is None:
            self.calls.append("send, same tag")
            return
        assert isinstance(retag, tuple)
        rules, tag = retag
        assert rules.generation == self.generation
        self.calls.append(f"send {tag:#x}")
        self.tag = tag
        self.generation += 1

    def current_generation(self, netns: str | None = None) -> int:
        return self.generation


@pytest.fixture
def kernel(monkeypatch: pytest.MonkeyPatch) -> Kernel:
    fake = Kernel()
    monkeypatch.setattr(nft_module, "flow_tag_rules", fake.rules)
    monkeypatch.setattr(nft_module, "forget_flows", fake.forget)
    monkeypatch.setattr(nft_module, "send_element_batch", fake.send)
    monkeypatch.setattr(nft_module, "ruleset_generation", fake.current_generation)
    return fake


def _backend() -> NftBackend:
    tags = itertools.cycle([0x00020000, 0x00030000, 0x00040000])
    return NftBackend("ns", flow_tags=lambda: next(tags))


def test_a_ban_uses_the_tag_readied_after_the_last_change(kernel: Kernel) -> None:
    backend = _backend()
    backend.add([BAN])  # nothing readied yet: the walk comes first
    backend.commit()
    backend.add([BAN])
    backend.commit()
    backend.add([BAN])
    backend.commit()
    assert kernel.calls == [
        "forget 0x20000",
        "send 0x20000",
        "forget 0x30000",  # readied after the ban landed
        "send 0x30000",  # no walk while the ban waits
        "forget 0x40000",
        "send 0x40000",
        "forget 0x20000",
    ]


def test_a_readied_tag_is_dropped_when_someone_changed_the_ruleset(kernel: Kernel) -> None:
    backend = _backend()
    backend.add([BAN])
    backend.commit()
    kernel.generation += 1  # another load: it may have put 0x30000 in use
    kernel.calls.clear()
    backend.add([BAN])
    backend.commit()
    assert kernel.calls == ["forget 0x40000", "send 0x40000", "forget 0x20000"]


def test_removing_a_ban_keeps_the_tag(kernel: Kernel) -> None:
    backend = _backend()
    backend.delete([BAN])
    backend.commit()
    assert kernel.calls == ["send, same tag"]
