"""The REST shapes of a ban's evidence (``GET /api/v1/bans/{address}``; docs/observability.md)."""

from __future__ import annotations

from pydantic import BaseModel, Field

from pbxfw.web.schemas import BanPublic

__all__ = ["BanDetails", "EvidenceLinePublic", "EvidencePublic", "EvidenceRule"]


class EvidenceLinePublic(BaseModel):
    """One log line that made the ban."""

    file: str = Field(description="the log file (or journal: source) it was read from")
    line: int = Field(
        description="its line number, as the agent counted it (docs/observability.md)"
    )
    time: float = Field(description="the log's own time of the failure, epoch seconds")
    event: str = Field(description="what the recogniser named it")
    text: str = Field(description="the line, cut to 1,024 characters")


class EvidenceRule(BaseModel):
    """The rule that fired."""

    jail: str
    maxretry: int
    findtime: int


class EvidencePublic(BaseModel):
    """The rule and the lines, oldest first; ``lost``: counted failures whose lines were not kept."""

    rule: EvidenceRule
    lines: list[EvidenceLinePublic]
    lost: int


class BanDetails(BanPublic):
    """One stored ban of the address, active or ended, with who made it and why."""

    who: str | None = Field(
        description="who made an administrator's ban (cli:USER, web:ADMIN, rest:ADMIN); "
        "null for a jail's"
    )
    active: bool
    evidence: EvidencePublic | None = Field(
        description="a jail's ban: the rule and the log lines that made it; null otherwise"
    )
