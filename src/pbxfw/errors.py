"""The one exception tree of pbxfw.

Adapters translate it at their boundary: the CLI to an exit code and a
message on stderr, the REST API to an HTTP status and a JSON body::

    PbxfwError                   anything pbxfw refuses or cannot do
    ├── ValidationError          bad input; names the field (CLI exit 2, HTTP 422)
    │   └── ConflictError        unique name/subnet taken (CLI exit 2, HTTP 409)
    ├── NotFoundError            no such network, service, ban (CLI exit 3, HTTP 404)
    ├── PermanentError           the permanent networks cannot be removed (exit 2, HTTP 409)
    ├── StorageError             database missing, not initialised, unreachable (exit 4, 503)
    ├── KernelError              nft refused or failed; carries its message (exit 5, 502)
    └── LockoutError             an apply would cut the administrator off (exit 6, 409)
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = [
    "ConflictError",
    "FieldError",
    "KernelError",
    "LockoutError",
    "NotFoundError",
    "PbxfwError",
    "PermanentError",
    "StorageError",
    "ValidationError",
]


@dataclass(frozen=True, slots=True)
class FieldError:
    """One problem with one input field: ``field`` is the dotted path."""

    field: str
    message: str

    def __str__(self) -> str:
        return f"{self.field}: {self.message}"


class PbxfwError(Exception):
    """Base of every error pbxfw raises on purpose."""

    exit_code = 1


class ValidationError(PbxfwError):
    """Input that pbxfw refuses; ``errors`` name each field and the fix."""

    exit_code = 2

    def __init__(self, errors: list[FieldError] | FieldError | str, field: str = "") -> None:
        if isinstance(errors, str):
            errors = [FieldError(field or "input", errors)]
        elif isinstance(errors, FieldError):
            errors = [errors]
        self.errors: list[FieldError] = list(errors)
        super().__init__("; ".join(str(e) for e in self.errors))

    def prefixed(self, prefix: str) -> ValidationError:
        """The same errors with ``prefix.`` before each field (for documents)."""
        return type(self)([FieldError(f"{prefix}.{e.field}", e.message) for e in self.errors])


class ConflictError(ValidationError):
    """A unique value (network name or subnet, service key) is already taken."""


class NotFoundError(PbxfwError):
    """The thing referred to does not exist."""

    exit_code = 3


class PermanentError(PbxfwError):
    """An operation the permanent networks do not allow (removal)."""

    exit_code = 2


class StorageError(PbxfwError):
    """The database cannot be used (missing, not initialised, unreachable)."""

    exit_code = 4


class KernelError(PbxfwError):
    """nftables refused or failed; ``payload`` is what was sent, if any."""

    exit_code = 5

    def __init__(self, message: str, payload: str | None = None) -> None:
        super().__init__(message)
        self.payload = payload


class LockoutError(PbxfwError):
    """Applying would block the administrator's own address."""

    exit_code = 6
