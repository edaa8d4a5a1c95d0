"""Property test against the served OpenAPI document: no input gives a 5xx.

For every operation of ``/api/v1/openapi.json`` hypothesis builds requests
from the document's own schemas (resolving ``$ref``), mixed with values a
PBX administrator types (addresses, CIDRs, ports, durations) and with plain
garbage of the wrong type. Whatever comes in, the answer is a 2xx, a 4xx
naming the problem, never a server error. The database is shared by the
examples of one operation, so later requests meet the state earlier ones
left (networks added, removed, services gone).

Schemathesis would do the same from the same document; it is not a
dependency of pbxfw, and hypothesis is.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

import pytest
from fastapi import FastAPI
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pbxfw.domain.services import BUILTIN_KEYS
from pbxfw.domain.settings import SETTINGS_KEYS
from tests.web.conftest import TestClient

JSON = dict[str, Any]

# What administrators type, so that requests reach the use cases' validation
# and not only pydantic's.
_TYPED = st.sampled_from(
    [
        "",
        "10.0.0.0/8",
        "192.168.1.77/24",
        "2001:db8::/32",
        "fe80::1%eth0",
        "::ffff:10.0.0.1",
        "0.0.0.0/0",
        "::/0",
        "300.1.1.1",
        "10.0.0.0/33",
        "1.2.3.4",
        "allow",
        "block",
        "on",
        "off",
        "5060",
        "70000",
        "5000-4000",
        "10m",
        "30d",
        "normal",
        "paranoid",
        "sip",
        "manual",
        "asterisk",
        "Internet",
        "\x00",
        "a" * 300,
    ]
)
# Typed values twice as often as random text: they get past parsing into the use cases.
_TEXT = st.one_of(_TYPED, _TYPED, st.text(max_size=30))
_KEYS = st.one_of(
    st.sampled_from([*SETTINGS_KEYS, *BUILTIN_KEYS, "ips_preset"]), st.text(max_size=12)
)
_ANY_JSON = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**63), 2**63)
    | st.floats(allow_nan=False, allow_infinity=False)
    | _TEXT,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(_KEYS, inner, max_size=4),
    max_leaves=8,
)


def from_schema(schema: JSON, components: JSON, depth: int = 0) -> st.SearchStrategy[Any]:
    """A strategy for values of a JSON schema (the subset FastAPI emits)."""
    if "$ref" in schema:
        name = schema["$ref"].rsplit("/", 1)[-1]
        return from_schema(components[name], components, depth)
    if "anyOf" in schema:
        return st.one_of([from_schema(s, components, depth + 1) for s in schema["anyOf"]])
    if "enum" in schema:
        return st.sampled_from(schema["enum"])
    if "const" in schema:
        return st.just(schema["const"])
    kind = schema.get("type")
    if kind == "string":
        return _TEXT
    if kind == "integer":
        low, high = schema.get("minimum"), schema.get("maximum")
        edges = [v for v in (low, high) if v is not None]
        edges += [e + d for e in edges for d in (-1, 1)]
        # Small numbers often: they are the ids of networks that exist.
        return st.one_of(
            st.sampled_from(edges or [0]),
            st.integers(-(2**40), 2**40),
            st.integers(1, 4),
            st.integers(1, 4),
        )
    if kind == "number":
        return st.floats(allow_nan=False, allow_infinity=False)
    if kind == "boolean":
        return st.booleans()
    if kind == "null":
        return st.none()
    if kind == "array":
        return st.lists(from_schema(schema.get("items", {}), components, depth + 1), max_size=5)
    if kind == "object" or "properties" in schema:
        properties = schema.get("properties", {})
        if not properties:
            values = schema.get("additionalProperties")
            inner = (
                from_schema(values, components, depth + 1)
                if isinstance(values, dict)
                else _ANY_JSON
            )
            return st.dictionaries(_KEYS, inner, max_size=6)
        required = set(schema.get("required", []))
        return st.fixed_dictionaries(
            {
                k: from_schema(v, components, depth + 1)
                for k, v in properties.items()
                if k in required
            },
            optional={
                k: from_schema(v, components, depth + 1)
                for k, v in properties.items()
                if k not in required
            },
        )
    return _ANY_JSON


def operations(app: FastAPI) -> list[tuple[str, str, JSON]]:
    document = app.openapi()
    return [
        (method.upper(), path, operation)
        for path, methods in document["paths"].items()
        for method, operation in methods.items()
    ]


def _operation_ids() -> list[str]:
    """The operations of the document, at collection time (no database is touched)."""
    from pbxfw.storage.repository import Store
    from pbxfw.web.app import create_app

    store = Store.open("sqlite://")
    try:
        return [f"{m} {p}" for m, p, _ in operations(create_app(store))]
    finally:
        store.close()


OPERATIONS = _operation_ids()


def test_the_document_lists_every_route() -> None:
    assert len(OPERATIONS) >= 18
    assert "POST /api/v1/networks" in OPERATIONS and "DELETE /api/v1/bans/{address}" in OPERATIONS


@pytest.mark.parametrize("operation_id", OPERATIONS)
@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(data=st.data())
def test_no_input_gives_a_server_error(
    operation_id: str, data: st.DataObject, app: FastAPI, client: TestClient, auth: dict[str, str]
) -> None:
    method, path, operation = next(
        op for op in operations(app) if f"{op[0]} {op[1]}" == operation_id
    )
    components = app.openapi().get("components", {}).get("schemas", {})
    url, query = path, {}
    for parameter in operation.get("parameters", []):
        value = data.draw(
            from_schema(parameter.get("schema", {}), components), label=parameter["name"]
        )
        if parameter["in"] == "path":
            url = url.replace("{" + parameter["name"] + "}", quote(str(value), safe="") or "x")
        elif parameter["in"] == "query" and (parameter.get("required") or data.draw(st.booleans())):
            query[parameter["name"]] = value if isinstance(value, str) else str(value)

    kwargs: dict[str, Any] = {"params": query, "headers": auth}
    content = operation.get("requestBody", {}).get("content", {})
    if "application/json" in content:
        body_schema = content["application/json"]["schema"]
        kwargs["json"] = data.draw(
            st.one_of(from_schema(body_schema, components), _ANY_JSON), label="body"
        )
    elif "application/x-www-form-urlencoded" in content:
        form_schema = content["application/x-www-form-urlencoded"]["schema"]
        form = data.draw(
            st.one_of(from_schema(form_schema, components), st.dictionaries(_KEYS, _TEXT)),
            label="form",
        )
        if isinstance(form, dict):
            kwargs["data"] = {str(k): str(v) for k, v in form.items() if v is not None}

    answer = client.request(method, url, **kwargs)
    assert answer.status_code < 500, (method, url, kwargs, answer.status_code, answer.text)
