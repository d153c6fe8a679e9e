"""What enrichment knows about one message: its metadata (and where it came from) and its exposure."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

ACCESSED = "accessed"
POTENTIAL = "potentially_exposed"

SOURCE_TRACE_V2 = "message_trace_v2"
SOURCE_TRACE = "message_trace"
SOURCE_GRAPH = "mailbox_graph"

NOTE_OLDER = "no metadata (older than message trace reach)"
NOTE_NOT_IN_TRACE = ("no metadata (not in message trace: older than its reach, or never passed through transport)")


def normalise_id(value: str) -> str:
    """Message ids compare without angle brackets and case (as the analysis keys them)."""
    return value.strip().strip("<>").strip().lower()


def bracketed(value: str) -> str:
    """The id as Exchange spells it: in angle brackets."""
    text = value.strip()
    return text if text.startswith("<") else f"<{text}>"


@dataclass
class MessageMeta:
    """Sender, recipients and the rest of one message, from one source."""

    internet_message_id: str
    sender: str = ""
    to: tuple[str, ...] = ()
    cc: tuple[str, ...] = ()  # only the mailbox (Graph) tells To from Cc; message trace lists every recipient in to
    bcc: tuple[str, ...] = ()
    subject: str = ""
    received: datetime | None = None
    size: int | None = None
    status: str = ""
    direction: str = ""
    has_attachments: bool | None = None
    source: str = ""

    @property
    def recipients(self) -> tuple[str, ...]:
        return self.to + self.cc + self.bcc


@dataclass
class ExposedMessage:
    """One exposed message id: how it was exposed, when first, in which contexts, and its metadata."""

    key: str  # normalised id
    internet_message_id: str  # as the records spell it
    exposure: str  # ACCESSED or POTENTIAL
    reasons: list[str] = field(default_factory=list)
    mailboxes: set[str] = field(default_factory=set)
    folders: set[str] = field(default_factory=set)
    first_access: datetime | None = None  # bind time (accessed) or the sync / throttling time (potential)
    contexts: set[str] = field(default_factory=set)  # "ip | app | client"
    meta: MessageMeta | None = None
    note: str = ""  # why there is no metadata

    def add_reason(self, reason: str) -> None:
        if reason not in self.reasons:
            self.reasons.append(reason)
