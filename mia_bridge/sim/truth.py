"""Ground truth of a generated scenario: what the attacker did, so tests can check the product finds
exactly that (and nothing benign)."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any


@dataclass
class AttackerAction:
    """One attacker record: its operation, AuditData Id, time and a sentence saying what it shows."""

    operation: str
    record_id: str
    time: datetime
    what: str
    user: str = ""
    ip: str = ""
    sparrow_search: str = ""  # the Sparrow search (peer-tools §1.4 row) expected to return it, if any


@dataclass
class ScenarioTruth:
    scenario: str
    seed: int
    organization: str
    victims: list[str] = field(default_factory=list)
    compromised_admin: str = ""
    attacker_ips: list[str] = field(default_factory=list)
    attacker_app_ids: list[str] = field(default_factory=list)
    attacker_app_names: list[str] = field(default_factory=list)
    attacker_forwarding_address: str = ""
    actions: list[AttackerAction] = field(default_factory=list)
    read_message_ids: set[str] = field(default_factory=set)  # InternetMessageIds bound by the attacker
    synced_folders: list[str] = field(default_factory=list)  # victim folders the attacker's client synced
    throttled_mailbox: str = ""
    throttled_at: datetime | None = None
    benign_users: list[str] = field(default_factory=list)
    federated_domains: list[str] = field(default_factory=list)
    benign_lookalike_ids: list[str] = field(default_factory=list)  # records that resemble the attack but are not
    record_count: int = 0

    def attacker_record_ids(self) -> set[str]:
        return {a.record_id for a in self.actions}

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["read_message_ids"] = sorted(self.read_message_ids)
        data["throttled_at"] = self.throttled_at.isoformat() if self.throttled_at else None
        for action in data["actions"]:
            action["time"] = action["time"].isoformat()
        return data

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, sort_keys=True)

    def write(self, path: str | Path) -> None:
        Path(path).write_text(self.to_json() + "\n", encoding="utf-8")

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ScenarioTruth:
        data = dict(data)
        data["actions"] = [
            AttackerAction(**{**a, "time": datetime.fromisoformat(a["time"])}) for a in data.get("actions", [])
        ]
        data["read_message_ids"] = set(data.get("read_message_ids", []))
        if data.get("throttled_at"):
            data["throttled_at"] = datetime.fromisoformat(data["throttled_at"])
        return cls(**data)

    @classmethod
    def from_json(cls, text: str) -> ScenarioTruth:
        return cls.from_dict(json.loads(text))
