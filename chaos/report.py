"""One result per experiment, printed as one table (and written as JSON for the tests)."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any


@dataclass
class Result:
    name: str
    title: str
    acknowledged: int = 0
    expected: int = 0
    found: int = 0
    missing: int = 0
    duplicated: int = 0
    # Rows nobody should have (a member told of what happened before they joined, rows of a
    # deleted group): counted apart from duplicates.
    unexpected: int = 0
    # Seconds from the end of the fault (or of the stream) until every expected row was
    # there; None if they never all came.
    recovery: float | None = None
    # The promise the recovery is held to, if the experiment has one.
    limit: float | None = None
    # The experiment's own outcome checks ("carol told of the share": True).
    checks: dict[str, bool] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    error: str | None = None
    seconds: float = 0.0

    @property
    def passed(self) -> bool:
        if self.error or self.recovery is None:
            return False
        if self.missing or self.duplicated or self.unexpected:
            return False
        if self.limit is not None and self.recovery > self.limit:
            return False
        return all(self.checks.values())

    def failures(self) -> list[str]:
        """Why it did not pass, in words."""
        out = []
        if self.error:
            out.append(f"error: {self.error.strip().splitlines()[-1]}")
        if self.missing:
            out.append(f"{self.missing} missing")
        if self.duplicated:
            out.append(f"{self.duplicated} duplicated")
        if self.unexpected:
            out.append(f"{self.unexpected} unexpected")
        if self.recovery is None and not self.error:
            out.append("never fully recovered")
        elif self.recovery is not None and self.limit is not None and self.recovery > self.limit:
            out.append(f"recovery {self.recovery:.1f}s > {self.limit:.0f}s")
        out += [f"failed: {name}" for name, ok in self.checks.items() if not ok]
        return out

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "passed": self.passed, "failures": self.failures()}


COLUMNS = ("experiment", "acked", "expected", "found", "missing", "dup", "unexpected", "recovery s", "result")


def _cells(r: Result) -> tuple[str, ...]:
    recovery = "never" if r.recovery is None else f"{r.recovery:.1f}"
    if r.limit is not None and r.recovery is not None:
        recovery += f" (<{r.limit:.0f})"
    return (r.title, str(r.acknowledged), str(r.expected), str(r.found), str(r.missing), str(r.duplicated),
            str(r.unexpected), recovery, "pass" if r.passed else "FAIL")


def table(results: list[Result], heading: str = "") -> str:
    rows = [COLUMNS, *(_cells(r) for r in results)]
    widths = [max(len(row[i]) for row in rows) for i in range(len(COLUMNS))]

    def line(row: tuple[str, ...]) -> str:
        cells = (c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(row, widths, strict=True)))
        return "| " + " | ".join(cells) + " |"

    out = [heading] if heading else []
    out += [line(rows[0]), "|" + "|".join("-" * (w + 2) for w in widths) + "|", *(line(r) for r in rows[1:])]
    for n, r in enumerate(results, 1):
        said = [*r.failures(), *r.notes]
        if said:
            out.append(f"{n}. {r.title}: " + "; ".join(said))
    return "\n".join(out)


def write_json(results: list[Result], path: Path, **context: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({**context, "results": [r.as_dict() for r in results]}, indent=2))
