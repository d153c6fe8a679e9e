"""Affected parties: every address on an exposed message, and every external domain, with counts."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime

from mia_bridge.enrich.model import ACCESSED, ExposedMessage

ADDRESS = "address"
EXTERNAL_DOMAIN = "external_domain"


@dataclass
class Party:
    party: str
    party_type: str  # ADDRESS or EXTERNAL_DOMAIN
    internal: bool
    accessed_messages: int = 0
    potentially_exposed_messages: int = 0
    as_sender: int = 0
    as_recipient: int = 0
    earliest: datetime | None = None
    latest: datetime | None = None
    _seen: set[str] = field(default_factory=set, repr=False)

    def count(self, message: ExposedMessage, *, sender: bool, recipient: bool) -> None:
        if message.key in self._seen:
            return
        self._seen.add(message.key)
        if message.exposure == ACCESSED:
            self.accessed_messages += 1
        else:
            self.potentially_exposed_messages += 1
        self.as_sender += int(sender)
        self.as_recipient += int(recipient)
        when = (message.meta.received if message.meta else None) or message.first_access
        if when is not None:
            self.earliest = when if self.earliest is None or when < self.earliest else self.earliest
            self.latest = when if self.latest is None or when > self.latest else self.latest


def affected_parties(messages: Iterable[ExposedMessage], internal_domains: set[str]) -> list[Party]:
    """One row per address and per external domain; messages without metadata name no party."""
    parties: dict[tuple[str, str], Party] = {}

    def party(name: str, kind: str, internal: bool) -> Party:
        key = (kind, name)
        if key not in parties:
            parties[key] = Party(name, kind, internal)
        return parties[key]

    for message in messages:
        meta = message.meta
        if meta is None:
            continue
        recipients = set(meta.recipients)
        domains: dict[str, tuple[bool, bool]] = {}
        for address in sorted({meta.sender, *recipients} - {""}):
            domain = address.rsplit("@", 1)[-1]
            internal = domain in internal_domains
            is_sender, is_recipient = address == meta.sender, address in recipients
            party(address, ADDRESS, internal).count(message, sender=is_sender, recipient=is_recipient)
            if not internal:
                s, r = domains.get(domain, (False, False))
                domains[domain] = (s or is_sender, r or is_recipient)
        for domain, (is_sender, is_recipient) in domains.items():
            party(domain, EXTERNAL_DOMAIN, False).count(message, sender=is_sender, recipient=is_recipient)
    return sorted(parties.values(), key=lambda p: (p.party_type, -(p.accessed_messages
                                                                   + p.potentially_exposed_messages), p.party))
