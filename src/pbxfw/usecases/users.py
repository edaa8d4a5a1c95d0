"""Administrators of the web page and the REST API; passwords hashed with argon2."""

from __future__ import annotations

import time
from collections.abc import Callable

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from pbxfw.domain.networks import validate_name
from pbxfw.errors import FieldError, ValidationError
from pbxfw.storage.repository import Store

__all__ = ["MIN_PASSWORD", "UserService"]

MIN_PASSWORD = 8
# A fixed hash to verify against when the user does not exist, so a login
# for an unknown name costs the same time as one with a wrong password.
_DUMMY_PASSWORD = "pbxfw-dummy-password"


class UserService:
    """Create users and check their passwords."""

    def __init__(self, store: Store, clock: Callable[[], float] = time.time) -> None:
        self.store = store
        self.clock = clock
        self._hasher = PasswordHasher()
        self._dummy = self._hasher.hash(_DUMMY_PASSWORD)

    def set_password(self, name: str, password: str) -> bool:
        """Create ``name`` or replace its password; True when the user is new."""
        errors = []
        try:
            validate_name(name, "name")
        except ValidationError as exc:
            errors += exc.errors
        if len(password) < MIN_PASSWORD:
            errors.append(FieldError("password", f"use at least {MIN_PASSWORD} characters"))
        if errors:
            raise ValidationError(errors)
        digest = self._hasher.hash(password)
        with self.store.write() as repo:
            return repo.set_user(name, digest, self.clock())

    def verify(self, name: str, password: str) -> bool:
        """True when ``password`` is ``name``'s; constant-ish time for unknown names."""
        with self.store.read() as repo:
            digest = repo.user_hash(name)
        try:
            self._hasher.verify(digest or self._dummy, password)
        except (VerificationError, InvalidHashError):
            return False
        return digest is not None

    def names(self) -> list[str]:
        with self.store.read() as repo:
            return repo.user_names()
