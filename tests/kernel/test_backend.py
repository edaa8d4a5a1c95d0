"""The kernel backend protocol: both backends implement it; buffered ban-set
changes reach the kernel only with ``commit``, as one transaction per path."""

from __future__ import annotations

import ipaddress
from collections.abc import Iterator

import pytest

from pbxfw.compiler import BanElement, compile_ruleset
from pbxfw.errors import KernelError
from pbxfw.kernel import Backend, BackendMetrics, DryRunBackend, NftBackend

from .configs import lab_config
from .lab import Lab, require_kernel

HOST = BanElement(ipaddress.ip_network("198.51.100.7/32"), "ssh", 600)
GONE = BanElement(ipaddress.ip_network("198.51.100.8/32"), "ssh", 600)
NET = BanElement(ipaddress.ip_network("203.0.113.0/24"), "manual", 60)


def test_both_backends_are_backends() -> None:
    # mypy checks these assignments structurally (the protocol's contract);
    # at run time: every method of the protocol is there.
    backends: list[Backend] = [NftBackend("ns"), DryRunBackend()]
    wanted = [name for name in vars(Backend) if not name.startswith("_")]
    for backend in backends:
        assert backend.netns in ("ns", None)
        assert all(callable(getattr(backend, n)) for n in wanted if n != "netns"), backend
        assert backend.metrics() == BackendMetrics()


def test_dry_run_changes_only_on_commit_in_the_buffered_order() -> None:
    backend: Backend = DryRunBackend()
    backend.add([HOST, GONE])
    backend.delete([GONE])
    assert isinstance(backend, DryRunBackend) and backend.bans == {}
    backend.commit()
    assert backend.bans == {("198.51.100.7/32", "ssh"): 600}
    backend.add([NET])
    backend.discard()
    backend.commit()  # nothing buffered: nothing sent
    assert backend.bans == {("198.51.100.7/32", "ssh"): 600}
    assert backend.calls == ["add 2", "delete 1", "commit", "add 1"]
    assert backend.metrics() == BackendMetrics(commits=1, elements_added=2, elements_deleted=1)


@pytest.fixture
def ns() -> Iterator[tuple[Lab, str]]:
    require_kernel()
    with Lab("backend") as lab:
        yield lab, lab.namespace("pbx")


def _listed(lab: Lab, ns: str, name: str) -> str:
    return lab.nft(ns, "list", "set", "inet", "pbxfw", name)


@pytest.mark.kernel
def test_one_commit_sends_deletes_and_adds_of_addresses_and_subnets(
    ns: tuple[Lab, str],
) -> None:
    lab, name = ns
    backend = NftBackend(name)
    backend.apply(compile_ruleset(lab_config(), [GONE]))
    backend.delete([GONE])
    backend.add([HOST], refresh=False)
    backend.add([NET])
    assert "198.51.100.8" in _listed(lab, name, "ban_ssh_v4")  # buffered only
    assert "198.51.100.7" not in _listed(lab, name, "ban_ssh_v4")
    backend.commit()
    ssh, guard = _listed(lab, name, "ban_ssh_v4"), _listed(lab, name, "banned_v4")
    assert "198.51.100.7 timeout 10m" in ssh and "198.51.100.8" not in ssh
    assert "198.51.100.7 timeout 10m" in guard and "198.51.100.8" not in guard
    assert "203.0.113.0/24 timeout 1m" in _listed(lab, name, "ban_manual_net_v4")
    assert "203.0.113.0/24 timeout 1m" in _listed(lab, name, "banned_net_v4")
    metrics = backend.metrics()
    assert (metrics.loads, metrics.commits, metrics.failed_commits) == (1, 1, 0)
    # Each element counted once per set: jail and guard; the delete
    # reaches the jail's set and the guard.
    assert (metrics.elements_added, metrics.elements_deleted) == (4, 2)


@pytest.mark.kernel
def test_a_refused_commit_empties_the_buffer(ns: tuple[Lab, str]) -> None:
    lab, name = ns
    backend = NftBackend(name)
    backend.apply(compile_ruleset(lab_config(), [NET]))
    inside = BanElement(ipaddress.ip_network("203.0.113.0/28"), "manual", 60)
    backend.add([inside])  # inside a banned subnet of the same jail: refused
    with pytest.raises(KernelError):
        backend.commit()
    assert backend.metrics().failed_commits == 1
    backend.commit()  # nothing left to send
    assert backend.metrics().commits == 0
    assert "203.0.113.0/28" not in _listed(lab, name, "ban_manual_net_v4")
