"""BanSets: the mirror of the kernel's ban sets and the guard arithmetic (pure)."""

from __future__ import annotations

import ipaddress

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pbxfw.compiler import BanElement
from pbxfw.domain.addresses import IPNetwork, networks_from_text
from pbxfw.domain.bans import Ban
from pbxfw.errors import KernelError
from pbxfw.kernel import BanSets, DryRunBackend, commit_changes
from pbxfw.kernel.bansets import BanStep, subnet_key

NOW = 1_000_000.0
NET = ipaddress.ip_network("198.51.100.9/32")
OTHER = ipaddress.ip_network("203.0.113.0/24")


def ban(subnet: IPNetwork, jail: str, seconds: float) -> Ban:
    return Ban(
        subnet=subnet,
        jail=jail,
        scope=frozenset({"all"}),
        reason="test",
        created_at=NOW,
        expires_at=NOW + seconds,
    )


def steps(sets: BanSets, bans: list[Ban], now: float = NOW) -> list[BanStep]:
    """The steps of a sync, which is then taken as landed."""
    changes = sets.sync(bans, now)
    sets.landed(changes)
    return list(changes.steps)


def test_new_bans_are_one_plain_add_whose_guard_is_the_bans_themselves() -> None:
    sets = BanSets()
    changes = sets.sync([ban(NET, "asterisk", 600), ban(OTHER, "manual", 60)], NOW)
    assert changes.steps == (
        BanStep(
            "add",
            [BanElement(NET, "asterisk", 600), BanElement(OTHER, "manual", 60)],
            None,  # each ban is its subnet's first: the guard holds the same elements
            refresh=False,
        ),
    )
    assert (changes.added, changes.renewed, changes.removed) == (2, 0, ())
    assert len(sets) == 0  # nothing is taken as held before it landed
    sets.landed(changes)
    assert len(sets) == 2 and sets.expiry(NET, "asterisk") == NOW + 600
    assert not sets.sync([ban(NET, "asterisk", 600), ban(OTHER, "manual", 60)], NOW + 5)


def test_two_jails_banning_one_subnet_share_one_guard_as_long_as_the_longest() -> None:
    sets = BanSets()
    [step] = steps(sets, [ban(NET, "ssh", 60), ban(NET, "asterisk", 600)])
    assert step.bans == [BanElement(NET, "ssh", 60), BanElement(NET, "asterisk", 600)]
    assert step.guard == [BanElement(NET, "asterisk", 600)]
    assert step.refresh is False


def test_a_removed_ban_keeps_the_guard_while_another_jail_bans_the_subnet() -> None:
    sets = BanSets()
    steps(sets, [ban(NET, "ssh", 60), ban(NET, "asterisk", 600)])
    changes = sets.sync([ban(NET, "ssh", 60)], NOW + 10)
    assert changes.steps == (
        BanStep("delete", [BanElement(NET, "asterisk")], []),  # not unguarded
        BanStep("add", [], [BanElement(NET, "manual", 50)]),  # the guard shrinks to ssh's ban
    )
    assert changes.removed == ((NET, "asterisk"),)
    sets.landed(changes)
    # The last ban goes: the subnet leaves the guard too.
    changes = sets.sync([], NOW + 20)
    assert changes.steps == (
        BanStep("delete", [BanElement(NET, "ssh")], [BanElement(NET, "manual")]),
    )
    sets.landed(changes)
    assert len(sets) == 0


def test_a_renewed_ban_renews_its_guard_to_the_longest_ban() -> None:
    sets = BanSets()
    steps(sets, [ban(NET, "ssh", 60), ban(NET, "asterisk", 600)])
    renewed = ban(NET, "ssh", 3600)
    assert steps(sets, [renewed, ban(NET, "asterisk", 600)]) == [
        BanStep("add", [BanElement(NET, "ssh", 3600)], [BanElement(NET, "manual", 3600)])
    ]
    # An expiry less than a second off is not a change.
    assert not sets.sync([ban(NET, "ssh", 3600.5), ban(NET, "asterisk", 600)], NOW)


def test_a_new_jail_on_a_guarded_subnet_renews_the_guard_instead_of_adding_it() -> None:
    sets = BanSets()
    steps(sets, [ban(NET, "ssh", 60)])
    assert steps(sets, [ban(NET, "ssh", 60), ban(NET, "web", 900)]) == [
        BanStep("add", [BanElement(NET, "web", 900)], [], refresh=False),
        BanStep("add", [], [BanElement(NET, "manual", 900)]),
    ]


def test_expired_bans_are_not_wanted() -> None:
    sets = BanSets()
    steps(sets, [ban(NET, "ssh", 60)])
    changes = sets.sync([ban(NET, "ssh", 60)], NOW + 61)
    assert changes.removed == ((NET, "ssh"),)


def test_fast_path_renews_and_guards_as_long_as_the_longest_held_ban() -> None:
    sets = BanSets()
    sets.loaded([BanElement(NET, "asterisk", 600)], NOW)
    changes = sets.add_new([ban(NET, "ssh", 60), ban(OTHER, "web", 30)], NOW)
    [step] = changes.steps
    assert step == BanStep(
        "add",
        [BanElement(NET, "ssh", 60), BanElement(OTHER, "web", 30)],
        [BanElement(NET, "manual", 600), BanElement(OTHER, "manual", 30)],
    )
    assert changes.added == 2
    sets.landed(changes)
    assert len(sets) == 3 and (subnet_key(OTHER), "web") in sets


def test_changes_committed_through_a_backend_reach_its_sets() -> None:
    sets, backend = BanSets(), DryRunBackend()
    for wanted in (
        [ban(NET, "ssh", 60), ban(NET, "asterisk", 600), ban(OTHER, "manual", 60)],
        [ban(NET, "ssh", 3600), ban(OTHER, "web", 60)],
        [],
    ):
        changes = sets.sync(wanted, NOW)
        commit_changes(backend, changes)
        sets.landed(changes)
        assert set(backend.bans) == {(str(b.subnet), b.jail) for b in wanted}
    assert backend.calls.count("commit") == 3  # one transaction per sync
    assert backend.metrics().commits == 3


class RefusingBackend(DryRunBackend):
    def commit(self) -> None:
        raise KernelError("refused")


def test_a_refused_commit_leaves_nothing_buffered_and_the_mirror_unchanged() -> None:
    sets, backend = BanSets(), RefusingBackend()
    changes = sets.sync([ban(NET, "ssh", 60)], NOW)
    with pytest.raises(KernelError):
        commit_changes(backend, changes)
    assert backend.staged == [] and backend.bans == {}
    assert len(sets) == 0  # not landed: the next sync makes the same changes
    assert sets.sync([ban(NET, "ssh", 60)], NOW).steps == changes.steps


def test_a_partial_sync_adds_and_renews_and_never_removes() -> None:
    """The bans written since the agent's last read (agent.bansync): held
    bans not in the list stay; a new one is added, a changed one renewed."""
    sets = BanSets()
    steps(sets, [ban(NET, "asterisk", 600), ban(OTHER, "manual", 60)])
    third = ipaddress.ip_network("192.0.2.7/32")
    changes = sets.sync([ban(third, "ssh", 60), ban(NET, "asterisk", 900)], NOW, partial=True)
    assert (changes.added, changes.renewed, changes.removed) == (1, 1, ())
    assert all(step.action == "add" for step in changes.steps)
    sets.landed(changes)
    assert len(sets) == 3
    assert sets.expiry(OTHER, "manual") == NOW + 60  # not in the list: kept
    assert sets.expiry(NET, "asterisk") == NOW + 900
    assert not sets.sync([ban(third, "ssh", 60)], NOW, partial=True)  # held already


@given(
    st.one_of(
        st.builds(
            ipaddress.IPv4Network,
            st.tuples(st.integers(0, 2**32 - 1), st.integers(0, 32)),
            st.just(False),
        ),
        st.builds(
            ipaddress.IPv6Network,
            st.tuples(st.integers(0, 2**128 - 1), st.integers(0, 128)),
            st.just(False),
        ),
    )
)
def test_the_key_of_a_subnet_is_its_text(subnet: IPNetwork) -> None:
    # IPv6 keys are inet_ntop's text (``::0.1.0.0`` where str() writes ``::1:0``)
    key = subnet_key(subnet)
    assert ipaddress.ip_network(key) == subnet
    if subnet.version == 4:
        assert key == str(subnet)


def test_the_key_of_a_host_read_back_from_storage_is_its_text() -> None:
    texts = ["0.0.0.0/32", "198.51.100.9/32", "255.255.255.255/32", "203.0.113.0/24"]
    assert [subnet_key(n) for n in networks_from_text(texts)] == texts


def test_an_unsure_transaction_is_taken_as_possibly_landed() -> None:
    """A commit that failed without saying what landed: the mirror holds
    both before and after, so a later sync removes what did land."""
    sets = BanSets()
    steps(sets, [ban(NET, "asterisk", 600)])
    changes = sets.sync([ban(NET, "asterisk", 600), ban(OTHER, "web", 900)], NOW)
    sets.unsure(changes)
    assert (subnet_key(OTHER), "web") in sets and (subnet_key(NET), "asterisk") in sets
    # the OTHER ban is lifted before anything was confirmed: it is removed
    removal = sets.sync([ban(NET, "asterisk", 600)], NOW)
    assert [s.action for s in removal.steps] == ["delete"]
    assert [e.subnet for e in removal.steps[0].bans] == [OTHER]
