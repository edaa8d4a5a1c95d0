"""Scanner fingerprints (issue 18): list, add, remove; the agent's read.

Each edit is one unit of work: the domain validator first
(``pbxfw.domain.fingerprints.validate_fingerprint``), then one transaction.
The list is not part of the ruleset, so an edit does not bump the
configuration revision (nothing to apply): the agent reads the list again
every few seconds (``agent.fingerprint``).
"""

from __future__ import annotations

from pbxfw.domain.fingerprints import (
    DEFAULT_FINGERPRINTS,
    Fingerprint,
    FingerprintEdit,
    effective_list,
    find,
    plan_add,
    validate_fingerprint,
)
from pbxfw.usecases.base import ConfigBase

__all__ = ["FingerprintService"]


class FingerprintService(ConfigBase):
    """The fingerprint list of one site (``site``, else the store's)."""

    def fingerprints(self) -> list[Fingerprint]:
        """The list in force: the shipped patterns not switched off, then the added ones."""
        with self.store.read() as repo:
            return effective_list(repo.fingerprint_edits())

    def add_fingerprint(self, pattern: str, header: str | None = None) -> Fingerprint:
        """Add ``pattern`` (of ``header``, default User-Agent); a shipped
        pattern that was removed is switched on again. ValidationError on a
        bad field, ConflictError when it is listed already."""
        new = validate_fingerprint(header, pattern)
        with self.store.write() as repo:
            edits = repo.fingerprint_edits()
            edit = plan_add(edits, new)
            if edit is None:  # a shipped one, switched off: switch it on
                repo.remove_fingerprint_edit(FingerprintEdit(new.header, new.pattern, True))
                return next(f for f in DEFAULT_FINGERPRINTS if f.key() == new.key())
            repo.add_fingerprint_edit(edit)
            return new

    def remove_fingerprint(self, pattern: str, header: str | None = None) -> Fingerprint:
        """Remove the listed ``pattern`` (any case); a shipped one is switched
        off. NotFoundError when it is not listed."""
        with self.store.write() as repo:
            gone = find(repo.fingerprint_edits(), header, pattern)
            if gone.builtin:
                repo.add_fingerprint_edit(FingerprintEdit(gone.header, gone.pattern, True))
            else:
                repo.remove_fingerprint_edit(FingerprintEdit(gone.header, gone.pattern))
            return gone
