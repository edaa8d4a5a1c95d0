"""Failure's two constructors (``Failure(...)`` and the fast ``new_failure``) give the same value."""

from __future__ import annotations

import copy
import dataclasses
import ipaddress
import pickle
from datetime import UTC, datetime

import pytest

from pbxfw.ips.events import Failure, new_failure

T0 = datetime(2026, 11, 1, 8, 42, 16, tzinfo=UTC)
HOST = ipaddress.ip_address("203.0.113.7")
FIELDS = (
    T0,
    "asterisk",
    HOST,
    "PJSIP INVITE: Failed to authenticate",
    "messages",
    7,
    "k",
    3,
    "100",
)


@pytest.mark.parametrize("make", [Failure, new_failure], ids=["Failure", "new_failure"])
def test_constructors_build_the_same_frozen_failure(make: type[Failure]) -> None:
    made = make(*FIELDS)
    assert type(made) is Failure
    assert dataclasses.astuple(made) == FIELDS
    assert made == Failure(*FIELDS) and hash(made) == hash(Failure(*FIELDS))
    assert make(T0, "ssh", HOST, "e") == Failure(T0, "ssh", HOST, "e", "", 0, "", 1, "")
    with pytest.raises(dataclasses.FrozenInstanceError):
        made.line = 8  # type: ignore[misc]
    assert pickle.loads(pickle.dumps(made)) == made
    assert copy.copy(made) == made
    assert dataclasses.replace(made, line=8).line == 8
    assert dataclasses.replace(made, count=1).user == "100"
    assert repr(made) == repr(Failure(*FIELDS))
