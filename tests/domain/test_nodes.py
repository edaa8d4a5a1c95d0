"""The node states (up, stale, drifted) and the node name rule, decided in the pure domain."""

from __future__ import annotations

import pytest

from pbxfw.domain.nodes import (
    STALE_SECONDS,
    Node,
    NodeState,
    node_state,
    validate_node_name,
)
from pbxfw.errors import ValidationError

T = 1_800_000_000.0


def node(last_seen: float = T, applied: int | None = 7) -> Node:
    return Node("pbx-1", "default", T - 100, T - 100, last_seen, applied, 3, "0.1.0", 0, "")


def test_a_node_reporting_the_stored_revision_is_up() -> None:
    assert node_state(node(), T + 1, 7) is NodeState.UP
    assert node_state(node(), T + STALE_SECONDS - 0.001, 7) is NodeState.UP


def test_no_report_for_30_seconds_is_stale() -> None:
    assert node_state(node(), T + STALE_SECONDS, 7) is NodeState.STALE
    assert node_state(node(), T + 31, 7) is NodeState.STALE


def test_another_revision_in_the_kernel_is_drifted() -> None:
    assert node_state(node(applied=6), T + 1, 7) is NodeState.DRIFTED
    # A kernel ahead of the store (a rollback stored meanwhile) is drift too.
    assert node_state(node(applied=8), T + 1, 7) is NodeState.DRIFTED
    # Nothing applied yet: the kernel holds no stored revision.
    assert node_state(node(applied=None), T + 1, 7) is NodeState.DRIFTED


def test_stale_wins_over_drifted() -> None:
    assert node_state(node(applied=6), T + 31, 7) is NodeState.STALE


def test_a_report_from_a_clock_ahead_counts_as_fresh() -> None:
    assert node_state(node(last_seen=T + 10), T, 7) is NodeState.UP


def test_as_json_has_the_state_and_both_revisions() -> None:
    shown = node(applied=6).as_json(T + 2.5, 7)
    assert shown["state"] == "drifted"
    assert shown["applied_revision"] == 6 and shown["stored_revision"] == 7
    assert shown["seconds_since_report"] == 2.5
    assert list(shown) == [
        "name",
        "site",
        "state",
        "last_seen",
        "seconds_since_report",
        "applied_revision",
        "stored_revision",
        "kernel_bans",
        "version",
        "log_lag_bytes",
        "last_error",
        "started_at",
        "registered_at",
    ]


@pytest.mark.parametrize("name", ["pbx1", "PBX-01.example.org", "a", "a_b", "9" * 63, "0.-_"])
def test_valid_node_names(name: str) -> None:
    assert validate_node_name(name) == name


@pytest.mark.parametrize(
    ("name", "why"),
    [
        ("", "cannot be empty"),
        ("a" * 64, "at most 63"),
        ("pbx 1", "not a node name"),
        ("pbx/1", "not a node name"),
        ("-pbx", "starting with a letter or a digit"),
        ("..", "starting with a letter or a digit"),
        ("pbx\x00", "not a node name"),
        ("pbxé", "not a node name"),
    ],
)
def test_invalid_node_names_name_the_field_and_the_fix(name: str, why: str) -> None:
    with pytest.raises(ValidationError) as caught:
        validate_node_name(name, "--node")
    [error] = caught.value.errors
    assert error.field == "--node" and why in error.message
