"""Fuzz every setting through the REST API and the CLI (issue 13 acceptance).

For each settings key (and ``ips_preset``), hypothesis sends values an
administrator types, values at and beyond every bound, values of the wrong
JSON type, control characters and plain garbage, through ``PATCH
/api/v1/settings`` (the real app) and ``pbxfw settings set KEY=VALUE`` (the
real CLI), one database per key that every example of the key shares. After
each attempt:

* no 5xx, no traceback: a 200 or a 422 naming settings; exit 0 or 2 with a
  message naming the setting;
* refused: the stored rows are exactly what they were;
* accepted: every stored row passes the domain's strict validator
  (``Settings.updated(rows, strict=True)``), none is one ``from_stored`` would
  ignore, and the stored configuration renders (PJSIP include) and compiles
  (ruleset), so no consumer meets a value it cannot use.

tests/web/test_openapi_fuzz.py covers every route for 5xx; this file is the
deep one for settings (about 30 s for both).
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pbxfw.asterisk.pjsip import render_pjsip
from pbxfw.compiler import compile_ruleset
from pbxfw.domain.settings import (
    MAX_BAN_SECONDS,
    MAX_FINDTIME_SECONDS,
    SETTINGS_KEYS,
    Settings,
)
from pbxfw.storage.repository import Store
from tests.web.conftest import TestClient

API = "/api/v1"
KEYS = [*SETTINGS_KEYS, "ips_preset"]
# Per key: 29 keys × (20 + 14) ≈ 1,000 attempts, about 30 s on two busy cores.
REST_EXAMPLES, CLI_EXAMPLES = 20, 14

_NUMBERS = [0, 1, -1, 22, 5060, 65535, 65536, 100000, 100001, 1_000_000, 1_000_001]
_NUMBERS += [MAX_FINDTIME_SECONDS, MAX_FINDTIME_SECONDS + 1, MAX_BAN_SECONDS]
_NUMBERS += [MAX_BAN_SECONDS + 1, 253402300800, 2**63, 10**30]
# What administrators (and attackers) type, as text: every kind of setting.
_TYPED = [
    "",
    " ",
    "0",
    "1",
    "5060",
    "65535",
    "65536",
    "-1",
    "5060.0",
    "1e30",
    "true",
    "false",
    "on",
    "off",
    "yes",
    "no",
    "maybe",
    "10m",
    "1h",
    "30d",
    "31d",
    "3650d",
    "3651d",
    "99999999999999999999w",
    "1" * 5000,
    "4222,8222,8000",
    "4222,,x",
    "10.0.0.0/8",
    "10.0.0.1, 2001:db8::1",
    "10.0.0.300",
    "fe80::1%eth0",
    "203.0.113.5",
    "[2001:db8::1]",
    "pbx.example.com",
    "pbx example",
    "/var/log/auth.log",
    "/etc/passwd",
    "/etc/asterisk/pbxfw_pjsip_nat.conf",
    "/etc/asterisk/../passwd.conf",
    "/etc/asterisk//x.conf",
    "/etc/asterisk/sub/x.conf",
    "/etc/asterisk",
    "/opt/asterisk/etc",
    "relative/path",
    "/tmp/x\x00y",
    "/tmp/x\ny",
    "/tmp/\x1b[31mred",
    "/tmp/\u202eevil",
    "/tmp/\ud800",
    "/" + "a" * 300,
    "/" + "a/" * 2100,
    "normal",
    "paranoid",
    "extreme",
]
TEXT = st.one_of(st.sampled_from(_TYPED), st.sampled_from(_TYPED), st.text(max_size=40))
SCALAR = st.one_of(
    st.none(),
    st.booleans(),
    st.sampled_from(_NUMBERS),
    st.integers(-(2**70), 2**70),
    st.floats(allow_nan=False, allow_infinity=False),
    TEXT,
)
JSON_VALUE = st.one_of(
    SCALAR,
    SCALAR,
    st.lists(SCALAR, max_size=4),
    st.dictionaries(st.text(max_size=5), SCALAR, max_size=2),
)
_SLOW_OK = [HealthCheck.function_scoped_fixture, HealthCheck.too_slow]


def stored_rows(store: Store) -> dict[str, Any]:
    with store.read() as repo:
        return repo.stored_settings()


def assert_valid(store: Store) -> None:
    """Every stored value passes the domain's validator, and consumers can use them."""
    rows = stored_rows(store)
    Settings().updated(rows, strict=True)  # raises if any row is invalid
    _, ignored = Settings.from_stored(rows)
    assert ignored == [], ignored
    with store.read() as repo:
        config = repo.configuration()
    render_pjsip(config)
    compile_ruleset(config)


@pytest.mark.parametrize("key", KEYS)
@settings(max_examples=REST_EXAMPLES, deadline=None, suppress_health_check=_SLOW_OK)
@given(data=st.data())
def test_rest_patch_of_each_setting(
    key: str, data: st.DataObject, client: TestClient, auth: dict[str, str], store: Store
) -> None:
    body = {key: data.draw(JSON_VALUE, label=key)}
    # Sometimes with other settings: rules between them (RTP range, ban
    # lengths, the include and its folder) are met together.
    body |= data.draw(st.dictionaries(st.sampled_from(KEYS), JSON_VALUE, max_size=2), label="more")
    before = stored_rows(store)
    # Encoded here: json.dumps escapes lone surrogates ("\\ud800"), which
    # httpx cannot encode, and the server decodes them back.
    answer = client.patch(
        f"{API}/settings",
        headers={**auth, "Content-Type": "application/json"},
        content=json.dumps(body).encode(),
    )
    assert answer.status_code in (200, 422), (body, answer.status_code, answer.text)
    if answer.status_code == 422:
        detail = answer.json()["detail"]
        assert detail and all(e["loc"][0] == "body" for e in detail), detail
        assert all(e["loc"][1] in (*KEYS, *body) for e in detail), detail
        assert stored_rows(store) == before, body
    else:
        assert_valid(store)
        assert answer.json() == client.get(f"{API}/settings", headers=auth).json()


@pytest.mark.parametrize("key", KEYS)
@settings(max_examples=CLI_EXAMPLES, deadline=None, suppress_health_check=_SLOW_OK)
@given(data=st.data())
def test_cli_settings_set_of_each_setting(
    key: str, data: st.DataObject, cli: Any, store: Store
) -> None:
    pairs = [f"{key}={data.draw(TEXT, label=key)}"]
    pairs += [
        f"{k}={v}"
        for k, v in data.draw(
            st.dictionaries(st.sampled_from(KEYS), TEXT, max_size=2), "more"
        ).items()
    ]
    before = stored_rows(store)
    # The fixture runs the CLI without catching exceptions: a traceback fails here.
    result = cli("settings", "set", *pairs)
    assert "Traceback" not in result.stderr
    assert result.exit_code in (0, 2), (pairs, result)
    if result.exit_code == 2:
        assert result.stderr.startswith("error: "), result.stderr
        assert stored_rows(store) == before, pairs
    else:
        assert result.stderr == "", result.stderr
        assert_valid(store)
