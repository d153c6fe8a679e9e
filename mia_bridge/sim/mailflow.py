"""Mail flow of the simulated tenant: every message a MailItemsAccessed record names, with its parties.

Built lazily (``mailflow_of(tenant)``) from the tenant's audit records and its seed, so it always agrees
with them: each InternetMessageId in a bind exists once, in the folder and mailbox the record names,
received before its first access, with sender, To/Cc/Bcc, subject, size, status and direction. A
message in "\\Sent Items" was sent by the mailbox owner; any other folder holds mail the owner
received. A few messages per mailbox were never read (so a synced folder or throttled window exposes
more than was bound), some of them filed in subfolders of the Inbox (``NESTED_FOLDERS``: a mailbox
listing must walk child folders to name their folder), and a few never passed through transport
(drafts, imports: message trace has no row for them, only the mailbox does).

``MailFlow`` also holds the message-trace service's knobs: whether ``Get-MessageTraceV2`` exists, its
rate limit (queries per window) and the clock that limit is counted on, and "now" for the 90-day reach.
"""

from __future__ import annotations

import collections
import dataclasses
import random
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

SENT_ITEMS = "\\sent items"
TRACE_REACH = timedelta(days=90)  # Get-MessageTraceV2
LEGACY_TRACE_REACH = timedelta(days=10)  # Get-MessageTrace
TRACE_RATE_LIMIT = 100  # queries ...
TRACE_RATE_WINDOW_S = 300.0  # ... per 5 minutes (per tenant)
_UNREAD_PER_MAILBOX = 8
NESTED_FOLDERS = ("\\Inbox\\Projects", "\\Inbox\\Projects\\Falcon")  # never read (filed by a rule, say)
_NESTED_PER_FOLDER = 2
_NOT_TRANSPORTED_RATE = 0.03

EXTERNAL_DOMAINS = ("fabrikam.example", "northwind.example", "proseware.example", "woodgrove-bank.example",
                    "adatum.example")
_EXTERNAL_LOCALS = ("j.smith", "accounts", "m.chen", "legal", "r.okafor", "invoices", "s.patel", "support")
_SUBJECTS = ("Q{q} budget review", "Invoice {n} due", "Re: contract renewal {n}", "Board pack draft v{q}",
             "Payroll changes for {m}", "Wire instructions — ref {n}", "Project Falcon status {n}",
             "Fwd: NDA signed copy", "Customer escalation #{n}", "Lunch on {m}?", "Quarterly forecast {q}",
             "Offer letter — candidate {n}")
_MONTHS = ("January", "February", "March", "April", "May", "June", "July", "August", "September", "October",
           "November", "December")


@dataclass(frozen=True)
class MailMessage:
    """One message in one mailbox folder, as transport and the mailbox know it."""

    internet_message_id: str  # as the audit record spells it (with <>)
    message_trace_id: str
    mailbox: str  # owner UPN, lower case
    folder: str  # folder path as audit records spell it
    sender: str
    to: tuple[str, ...]
    cc: tuple[str, ...]
    bcc: tuple[str, ...]
    subject: str
    received: datetime
    size: int
    status: str
    direction: str  # Inbound, Outbound or Internal (originating organisation's view)
    transported: bool  # False: never passed through transport (no message-trace row)
    has_attachments: bool

    @property
    def key(self) -> str:
        return normalise_id(self.internet_message_id)

    @property
    def recipients(self) -> tuple[str, ...]:
        return self.to + self.cc + self.bcc

    @property
    def parties(self) -> set[str]:
        return {self.sender, *self.recipients}


def normalise_id(value: str) -> str:
    return value.strip().strip("<>").strip().lower()


@dataclass
class MailFlow:
    """The tenant's messages and the message-trace service's limits."""

    messages: dict[str, MailMessage]  # normalised id -> message
    internal_domains: set[str]
    now: datetime = field(default_factory=lambda: datetime.now(tz=UTC))
    v2_available: bool = True  # False: Get-MessageTraceV2 -> CommandNotFoundException
    trace_denied: bool = False  # True: the app lacks the role message trace needs (PermissionDenied)
    rate_limit: int = TRACE_RATE_LIMIT
    rate_window_s: float = TRACE_RATE_WINDOW_S
    clock: Callable[[], float] = time.monotonic
    _recent: collections.deque[float] = field(default_factory=collections.deque)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    queries: int = 0
    throttled: int = 0

    def use_clock(self, clock: Callable[[], float]) -> None:
        """Count the rate limit on ``clock`` from now on (tests use virtual time); forgets earlier queries."""
        with self._lock:
            self.clock = clock
            self._recent.clear()

    def admit_query(self) -> bool:
        """Count one message-trace query; False when it exceeds the rate limit (the service throttles)."""
        with self._lock:
            now = self.clock()
            while self._recent and now - self._recent[0] >= self.rate_window_s:
                self._recent.popleft()
            if len(self._recent) >= self.rate_limit:
                self.throttled += 1
                return False
            self._recent.append(now)
            self.queries += 1
            return True

    def get(self, message_id: str) -> MailMessage | None:
        return self.messages.get(normalise_id(message_id))

    def in_mailbox(self, mailbox: str) -> list[MailMessage]:
        box = mailbox.lower()
        return [m for m in self.messages.values() if m.mailbox == box]

    def affected_parties(self, message_ids: Iterable[str]) -> set[str]:
        """Ground truth: every address that sent or received one of these messages (lower case)."""
        out: set[str] = set()
        for mid in message_ids:
            message = self.get(mid)
            if message is not None:
                out |= message.parties
        return out


def mailflow_of(tenant: Any) -> MailFlow:
    """The tenant's mail flow, built on first use from its audit records and seed (then cached)."""
    with tenant.lock:
        flow = tenant.__dict__.get("_mailflow")
        if flow is None:
            flow = build_mailflow(tenant)
            tenant.__dict__["_mailflow"] = flow
        return flow


def truth_affected_parties(tenant: Any) -> set[str]:
    """Ground truth of the scenario: the addresses on the mail the attacker read (bind)."""
    truth = tenant.truth
    if truth is None:
        return set()
    return mailflow_of(tenant).affected_parties(truth.read_message_ids)


def _internal_users(tenant: Any) -> list[str]:
    users = [str(m.get("PrimarySmtpAddress") or m.get("UserPrincipalName") or "").lower()
             for m in tenant.directory.mailboxes]
    return [u for u in users if u]


def build_mailflow(tenant: Any) -> MailFlow:
    """Every message named by a MailItemsAccessed bind, plus a few never read, deterministically."""
    seen: dict[str, tuple[str, str, str, int, datetime]] = {}  # key -> (raw id, mailbox, folder, size, first)
    for record in tenant.audit_records():
        if record.get("Operation") != "MailItemsAccessed":
            continue
        owner = str(record.get("MailboxOwnerUPN") or record.get("UserId") or "").lower()
        when = datetime.fromisoformat(str(record["CreationTime"]).replace("Z", "+00:00"))
        when = when if when.tzinfo else when.replace(tzinfo=UTC)
        for folder in record.get("Folders") or []:
            for item in folder.get("FolderItems") or []:
                raw = str(item.get("InternetMessageId") or "")
                if not raw:
                    continue
                key = normalise_id(raw)
                earlier = seen.get(key)
                if earlier is None or when < earlier[4]:
                    size = int(item.get("SizeInBytes") or 0)
                    seen[key] = (earlier[0] if earlier else raw, earlier[1] if earlier else owner,
                                 earlier[2] if earlier else str(folder.get("Path") or "\\Inbox"),
                                 earlier[3] if earlier else size, when)
    users = _internal_users(tenant) or sorted({v[1] for v in seen.values()})
    domains = {u.rsplit("@", 1)[1] for u in users if "@" in u}
    domains.add(str(tenant.config.organization).lower())
    seed = tenant.config.seed
    messages: dict[str, MailMessage] = {}
    hostile: tuple[str, ...] = tenant.__dict__.get("hostile_subjects") or ()  # sim/scenario_hostile.py
    for index, (key, (raw, owner, folder, size, first)) in enumerate(sorted(seen.items())):
        rng = random.Random(f"mailflow:{seed}:{key}")
        received = first - timedelta(minutes=rng.randint(10, 20 * 24 * 60))
        message = _message(rng, raw, owner, folder, size, received, users, domains)
        if hostile and index % 3 == 0:  # the attacker's own mail in the mailbox, subjects as attacks
            message = dataclasses.replace(message, subject=hostile[(index // 3) % len(hostile)])
        messages[key] = message
    # Mail never read: in each audited mailbox's Inbox, delivered during the records' period.
    owners = sorted({v[1] for v in seen.values()})
    times = sorted(v[4] for v in seen.values())
    if times:
        span = max(60, int((times[-1] - times[0]).total_seconds() // 60))
        for owner in owners:
            for i in range(_UNREAD_PER_MAILBOX):
                rng = random.Random(f"mailflow-unread:{seed}:{owner}:{i}")
                server = f"SIM{seed % 1000:03d}MB{i:04d}"  # Exchange Online spells ids after the server
                raw = f"<{server}{rng.getrandbits(144):036X}@{server}.namprd05.prod.outlook.com>"
                received = times[0] + timedelta(minutes=rng.randint(0, span))
                message = _message(rng, raw, owner, "\\Inbox", rng.randint(4_000, 90_000), received, users, domains)
                messages[message.key] = message
            for depth, folder in enumerate(NESTED_FOLDERS):
                for i in range(_NESTED_PER_FOLDER):
                    rng = random.Random(f"mailflow-nested:{seed}:{owner}:{depth}:{i}")
                    server = f"SIM{seed % 1000:03d}NF{depth}{i:03d}"
                    raw = f"<{server}{rng.getrandbits(144):036X}@{server}.namprd05.prod.outlook.com>"
                    # in the first half of the period: before the scenario's attack, so in what it exposed
                    received = times[0] + timedelta(minutes=rng.randint(0, span // 2))
                    message = _message(rng, raw, owner, folder, rng.randint(4_000, 90_000), received, users, domains)
                    messages[message.key] = message
    # the service's present is the tenant's (Tenant.now): its reach then covers the same mail on any day
    return MailFlow(messages=messages, internal_domains=domains, now=tenant.now())


def _address(rng: random.Random, users: list[str], owner: str, external_share: float) -> str:
    if rng.random() < external_share or len(users) < 2:
        return f"{rng.choice(_EXTERNAL_LOCALS)}@{rng.choice(EXTERNAL_DOMAINS)}"
    return rng.choice([u for u in users if u != owner])


def _message(rng: random.Random, raw: str, owner: str, folder: str, size: int, received: datetime,
             users: list[str], domains: set[str]) -> MailMessage:
    sent = folder.lower() == SENT_ITEMS
    if sent:
        sender = owner
        to = tuple(sorted({_address(rng, users, owner, 0.5) for _ in range(rng.randint(1, 3))}))
    else:
        sender = _address(rng, users, owner, 0.55)
        # Mail from outside lists only this organisation's recipients: what its message trace shows too.
        share = 0.0 if sender.rsplit("@", 1)[-1] not in domains else 0.4
        others = {_address(rng, users, owner, share) for _ in range(rng.randint(0, 2))} - {sender}
        to = tuple(sorted({owner} | others))
    cc_share = 0.0 if sender.rsplit("@", 1)[-1] not in domains else 0.3
    cc = tuple(sorted({_address(rng, users, owner, cc_share) for _ in range(rng.choice((0, 0, 1, 2)))}
                      - set(to) - {sender}))
    bcc = tuple(sorted({_address(rng, users, owner, 0.5)} - set(to) - set(cc) - {sender})) if (
        sent and rng.random() < 0.15) else ()
    subject = rng.choice(_SUBJECTS).format(q=rng.randint(1, 4), n=rng.randint(1000, 99999),
                                            m=rng.choice(_MONTHS))
    internal_sender = sender.rsplit("@", 1)[-1] in domains
    external_rcpt = any(r.rsplit("@", 1)[-1] not in domains for r in to + cc + bcc)
    direction = ("Outbound" if external_rcpt else "Internal") if internal_sender else "Inbound"
    status = "Delivered"
    return MailMessage(
        internet_message_id=raw,
        message_trace_id=str(_uuid(rng)),
        mailbox=owner,
        folder=folder,
        sender=sender,
        to=to,
        cc=cc,
        bcc=bcc,
        subject=subject,
        # Received carries sub-second precision, as the service's does (exchange-platform-facts: message
        # trace [U]; the harsher side: paging at a row's Received must not lose that second's other rows).
        received=received.replace(microsecond=_microseconds(raw)),
        size=size or rng.randint(4_000, 120_000),
        status=status,
        direction=direction,
        transported=rng.random() >= _NOT_TRANSPORTED_RATE,
        has_attachments=rng.random() < 0.3,
    )


def _microseconds(raw: str) -> int:
    """A stable sub-second part per message (not drawn from the scenario's generator: it stays as it was)."""
    import hashlib

    return int.from_bytes(hashlib.sha256(raw.encode("utf-8", "surrogatepass")).digest()[:4], "big") % 1_000_000


def _uuid(rng: random.Random) -> Any:
    import uuid

    return uuid.UUID(int=rng.getrandbits(128), version=4)
