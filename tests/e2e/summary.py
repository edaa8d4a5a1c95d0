"""The end-to-end run's summary: printed at the end, kept in ``var/e2e/summary.md``,
and written into ``docs/e2e.md`` (between the summary markers) when
``PBXFW_E2E_RECORD=1``."""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field

from .pbx import REPO

DOC = REPO / "docs" / "e2e.md"
BEGIN = "<!-- e2e-summary:begin -->"
END = "<!-- e2e-summary:end -->"


@dataclass
class Attacker:
    name: str
    tool: str
    address: str
    failures_before_ban: int | None = None
    deciding_failure: float | None = None  # EventTV of the maxretry-th failure
    banned_at: float | None = None  # first seen in the kernel ban set
    lines_after_ban: int | None = None
    note: str = ""

    @property
    def time_to_ban(self) -> float | None:
        if self.deciding_failure is None or self.banned_at is None:
            return None
        return self.banned_at - self.deciding_failure


@dataclass
class Summary:
    started: float = field(default_factory=time.monotonic)
    finished: float | None = None
    facts: dict[str, str] = field(default_factory=dict)
    attackers: list[Attacker] = field(default_factory=list)
    verdicts: dict[str, str] = field(default_factory=dict)

    def fact(self, key: str, value: object) -> None:
        self.facts[key] = str(value)

    def verdict(self, name: str, ok: bool, detail: str = "") -> None:
        self.verdicts[name] = ("PASS" if ok else "FAIL") + (f" — {detail}" if detail else "")

    def empty(self) -> bool:
        return not (self.facts or self.attackers or self.verdicts)

    def render(self) -> str:
        total = (self.finished or time.monotonic()) - self.started
        out = ["## Last run", ""]
        out.append(f"- e2e wall time (lab build included): {total:.0f} s")
        for key, value in self.facts.items():
            out.append(f"- {key}: {value}")
        if self.attackers:
            out += [
                "",
                "| attacker | tool | address | failures before ban | time to ban | lines after ban | note |",
                "|---|---|---|---|---|---|---|",
            ]
            for a in self.attackers:
                ttb = "not banned" if a.time_to_ban is None else f"{a.time_to_ban * 1000:.0f} ms"
                out.append(
                    f"| {a.name} | {a.tool} | {a.address} | {_opt(a.failures_before_ban)} | "
                    f"{ttb} | {_opt(a.lines_after_ban)} | {a.note} |"
                )
        if self.verdicts:
            out += ["", "| check | verdict |", "|---|---|"]
            out += [f"| {name} | {v} |" for name, v in self.verdicts.items()]
        return "\n".join(out) + "\n"

    def save(self) -> str:
        text = self.render()
        target = REPO / "var" / "e2e"
        target.mkdir(parents=True, exist_ok=True)
        (target / "summary.md").write_text(text)
        if os.environ.get("PBXFW_E2E_RECORD") == "1" and DOC.exists():
            doc = DOC.read_text()
            if BEGIN in doc and END in doc:
                head, rest = doc.split(BEGIN, 1)
                _, tail = rest.split(END, 1)
                DOC.write_text(f"{head}{BEGIN}\n{text}{END}{tail}")
        return text


def _opt(value: object) -> str:
    return "—" if value is None else str(value)


SUMMARY = Summary()
