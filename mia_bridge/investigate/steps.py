"""Step outcomes: every step of an investigation ends done, skipped (with a reason) or failed (with a reason).

A skip is not silent: it is printed, written to the manifest and shown in the report. ``attention``
marks outcomes that make the run "complete with gaps" (exit code 3) rather than plainly complete.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from enum import StrEnum
from typing import Any


class StepStatus(StrEnum):
    DONE = "done"
    SKIPPED = "skipped"
    FAILED = "failed"


@dataclass
class StepOutcome:
    """The outcome of one step (or sub-step, e.g. one search)."""

    name: str
    status: StepStatus
    reason: str = ""
    attention: bool = False  # a skip or detail the responder should look at
    details: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["status"] = self.status.value
        return data


class StepLog:
    """Ordered outcomes of a run, with an optional callback so the CLI can print them as they happen."""

    def __init__(self, on_outcome: Any = None) -> None:
        self._outcomes: list[StepOutcome] = []
        self._on_outcome = on_outcome

    def record(self, outcome: StepOutcome) -> StepOutcome:
        self._outcomes.append(outcome)
        if self._on_outcome is not None:
            self._on_outcome(outcome)
        return outcome

    def done(self, name: str, reason: str = "", *, attention: bool = False, **details: Any) -> StepOutcome:
        return self.record(StepOutcome(name, StepStatus.DONE, reason, attention, details))

    def skipped(self, name: str, reason: str, *, attention: bool = True, **details: Any) -> StepOutcome:
        return self.record(StepOutcome(name, StepStatus.SKIPPED, reason, attention, details))

    def failed(self, name: str, reason: str, **details: Any) -> StepOutcome:
        return self.record(StepOutcome(name, StepStatus.FAILED, reason, True, details))

    def __iter__(self) -> Iterator[StepOutcome]:
        return iter(self._outcomes)

    def __len__(self) -> int:
        return len(self._outcomes)

    @property
    def failures(self) -> list[StepOutcome]:
        return [o for o in self._outcomes if o.status is StepStatus.FAILED]

    @property
    def needs_attention(self) -> bool:
        return any(o.attention for o in self._outcomes)

    def to_list(self) -> list[dict[str, Any]]:
        return [o.to_dict() for o in self._outcomes]
