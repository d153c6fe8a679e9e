"""A ``mia doctor`` row: name, status (ok / warn / fail), detail; deep probes also say what was expected,
what was observed and what a difference changes."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

OK, WARN, FAIL = "ok", "warn", "fail"


@dataclass
class Check:
    name: str
    status: str
    detail: str
    expected: str = ""
    observed: str = ""
    changes: str = ""
    matches: bool | None = None  # deep probes: observed as expected? (None: not a deep probe, or no data)

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"name": self.name, "status": self.status, "detail": self.detail}
        if self.expected or self.observed:
            out.update(expected=self.expected, observed=self.observed, as_expected=self.matches,
                       changes=self.changes)
        return out

    def verdict(self) -> str:
        """The deep probe's column in the table."""
        if self.matches is None:
            return "" if not self.expected else "not judged"
        if self.matches:
            return "as expected"
        return f"DIFFERENT (expected: {self.expected}); this changes: {self.changes}"
