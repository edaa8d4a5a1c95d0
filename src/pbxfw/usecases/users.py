"""Administrators of the web page and the REST API: passwords, logouts, the login throttle.

Passwords are argon2 hashes. Logouts and the throttle live in the database
(:mod:`pbxfw.storage.sessions`), so every web worker and a restarted server
agree; the rule of the throttle is :mod:`pbxfw.domain.login_throttle`.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, replace

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from pbxfw.domain import login_throttle as rule
from pbxfw.domain.network_model import validate_name
from pbxfw.errors import FieldError, NotFoundError, ValidationError
from pbxfw.storage.repository import Store
from pbxfw.storage.sessions import AuthRepository, session_state

__all__ = ["MIN_PASSWORD", "Admission", "LoginThrottle", "UserService"]

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
        """Create ``name`` or replace its password; True when the user is new.

        A new password ends every session and API token the user had (as
        ``logout_everywhere``): whoever knew the old one is out.
        """
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
        now = self.clock()
        with self.store.write() as repo:
            created = repo.set_user(name, digest, now)
            if not created:
                AuthRepository(repo.session).set_sessions_valid_after(name, now)
            return created

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

    # -- sessions and tokens ------------------------------------------------------
    def logout_everywhere(self, name: str) -> float:
        """End every session and API token of ``name`` issued until now; returns the cutoff.

        Raises NotFoundError for an unknown user.
        """
        now = self.clock()
        with self.store.write() as repo:
            if not AuthRepository(repo.session).set_sessions_valid_after(name, now):
                raise NotFoundError(f"no user {name!r} (see `pbxfw user list`)")
        return now

    def revoke(self, sid: str, until: float) -> None:
        """Refuse the session or token with id ``sid`` until ``until`` (its expiry)."""
        with self.store.write() as repo:
            AuthRepository(repo.session).revoke(sid, until, self.clock())

    def accepts(self, name: str, issued: float, sid: str | None) -> bool:
        """May a session or token of ``name``, issued at ``issued`` with id ``sid``, be used?

        No when the user does not exist, when it was issued at or before the
        user's cutoff (``logout_everywhere``), or when ``sid`` was revoked.
        """
        state = session_state(self.store.engine, name, sid, self.clock())
        if state.valid_after is None or state.revoked:
            return False
        # A user never logged out everywhere (cutoff 0) keeps cookies signed
        # before tokens carried an issue time.
        return state.valid_after == 0 or issued > state.valid_after


@dataclass(frozen=True, slots=True)
class Admission:
    """May a login attempt go on? ``retry_after`` > 0: refused for that many
    seconds; otherwise wait ``delay`` seconds, then check the password."""

    retry_after: int = 0
    delay: float = 0.0

    @property
    def refused(self) -> bool:
        return self.retry_after > 0


class LoginThrottle:
    """Slow password guessing per client address and per account (the rule:
    :mod:`pbxfw.domain.login_throttle`).

    Every attempt goes ``begin`` → (wait ``delay``) → check the password →
    ``failed`` or ``succeeded``. ``begin`` counts the attempt as a failure
    *before* the password is checked, in one write transaction, so parallel
    attempts from one address cannot slip past the threshold while their
    passwords are being checked; ``succeeded`` takes it back.
    """

    def __init__(self, store: Store, clock: Callable[[], float] = time.time) -> None:
        self.store = store
        self.clock = clock

    def begin(self, user: str, address: str) -> Admission:
        now = self.clock()
        akey, ukey = rule.address_key(address), rule.user_key(user)
        with self.store.write() as repo:
            auth = AuthRepository(repo.session)
            records = auth.throttle_records([akey, ukey])
            at_address = records.get(akey)
            if at_address is not None and at_address.locked(now):
                return Admission(retry_after=rule.retry_after(at_address, now))
            account = records.get(ukey)
            before = 0 if account is None or rule.is_stale(account, now) else account.failures
            at_address = rule.count_failure(at_address, akey, now)
            lock = rule.address_lock(at_address.failures)
            if lock:
                at_address = replace(at_address, locked_until=now + lock)
            auth.save_throttle(at_address)
            auth.save_throttle(rule.count_failure(account, ukey, now))
        return Admission(delay=rule.account_delay(before))

    def failed(self, user: str, address: str) -> None:
        """The password was wrong: the address's lock runs from now."""
        now = self.clock()
        akey = rule.address_key(address)
        with self.store.write() as repo:
            auth = AuthRepository(repo.session)
            record = auth.throttle_records([akey]).get(akey)
            lock = rule.address_lock(record.failures) if record else 0.0
            if record is not None and lock:
                auth.save_throttle(
                    replace(record, locked_until=max(record.locked_until, now + lock))
                )
            auth.prune_throttle(now)

    def succeeded(self, user: str, address: str) -> None:
        """The password was right: forget the address's failures, take back the account's one."""
        akey, ukey = rule.address_key(address), rule.user_key(user)
        with self.store.write() as repo:
            auth = AuthRepository(repo.session)
            auth.forget_throttle(akey)
            account = auth.throttle_records([ukey]).get(ukey)
            if account is not None and account.failures > 1:
                auth.save_throttle(replace(account, failures=account.failures - 1))
            elif account is not None:
                auth.forget_throttle(ukey)

    def records(self) -> list[rule.ThrottleRecord]:
        """Every record, for tests and status pages."""
        with self.store.read() as repo:
            return sorted(AuthRepository(repo.session).all_throttle_records(), key=lambda r: r.key)
