"""Fixtures for the web tests: a fresh database, an app, a client, a token."""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from pathlib import Path

import pytest
from argon2 import PasswordHasher
from fastapi import FastAPI

with warnings.catch_warnings():
    # Starlette 1.x asks for the httpx2 package; httpx works and is what we have.
    warnings.simplefilter("ignore")
    # Re-exported (the "as" form): the web tests import it from here, so the
    # warning above is silenced in one place.
    from fastapi.testclient import TestClient as TestClient

from pbxfw.storage.repository import Store
from pbxfw.usecases import ConfigService
from pbxfw.usecases.users import UserService
from pbxfw.web.app import create_app
from tests.web.fakes import FakeApplier

ADMIN, PASSWORD = "admin", "correct horse battery"
#: The address the test client connects from (an IP, so failed logins are recorded).
CLIENT = ("198.51.100.20", 50000)


@pytest.fixture(autouse=True)
def cheap_password_hashing(monkeypatch: pytest.MonkeyPatch) -> None:
    """argon2 with its smallest cost: the same code paths, milliseconds instead of 0.3 s."""
    import pbxfw.usecases.users as users

    monkeypatch.setattr(
        users, "PasswordHasher", lambda: PasswordHasher(time_cost=1, memory_cost=8, parallelism=1)
    )


@pytest.fixture
def store(db_url: str) -> Iterator[Store]:
    """A fresh, initialised database (the one the ``cli`` fixture uses too)."""
    store = Store.open(db_url, create=True)
    ConfigService(store).init()
    UserService(store).set_password(ADMIN, PASSWORD)
    yield store
    store.close()


@pytest.fixture
def applier() -> FakeApplier:
    return FakeApplier()


@pytest.fixture
def web_log(tmp_path: Path) -> Path:
    return tmp_path / "pbxfw-web.log"


@pytest.fixture
def app(store: Store, applier: FakeApplier, web_log: Path) -> FastAPI:
    return create_app(store, applier=applier, secret_key=b"k" * 32, web_log=web_log)


@pytest.fixture
def client(app: FastAPI) -> Iterator[TestClient]:
    with TestClient(app, client=CLIENT) as client:
        yield client


@pytest.fixture
def auth(client: TestClient) -> dict[str, str]:
    """Authorization headers with a fresh bearer token."""
    answer = client.post("/api/v1/auth/token", data={"username": ADMIN, "password": PASSWORD})
    assert answer.status_code == 200, answer.text
    return {"Authorization": f"Bearer {answer.json()['access_token']}"}
