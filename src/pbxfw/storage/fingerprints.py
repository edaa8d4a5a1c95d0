"""Scanner fingerprint edits: rows ↔ domain objects (part of ``Repository``).

Each site keeps its own edits of the shipped list (migration 0013); every
read and write here is of the repository's site (``self.site``).
"""

from __future__ import annotations

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from pbxfw.domain.fingerprints import FingerprintEdit
from pbxfw.storage.models import FingerprintEditRow

__all__ = ["FingerprintRows"]


class FingerprintRows:
    """Reads and writes of this site's fingerprint edits on ``self.session``."""

    session: Session
    site: str

    def fingerprint_edits(self) -> list[FingerprintEdit]:
        rows = self.session.scalars(
            select(FingerprintEditRow)
            .where(FingerprintEditRow.site == self.site)
            .order_by(FingerprintEditRow.id)
        )
        return [FingerprintEdit(r.header, r.pattern, r.disabled) for r in rows]

    def add_fingerprint_edit(self, edit: FingerprintEdit) -> None:
        self.session.add(
            FingerprintEditRow(
                site=self.site,
                header=edit.header,
                pattern=edit.pattern,
                folded=edit.pattern.casefold(),
                disabled=edit.disabled,
            )
        )
        self.session.flush()

    def remove_fingerprint_edit(self, edit: FingerprintEdit) -> None:
        self.session.execute(
            delete(FingerprintEditRow).where(
                FingerprintEditRow.site == self.site,
                FingerprintEditRow.header == edit.header,
                FingerprintEditRow.folded == edit.pattern.casefold(),
            )
        )
