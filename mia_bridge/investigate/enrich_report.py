"""The report's "Affected parties" section: the parties table and the exposed messages with their parties,
as the report's generic tables (the full lists are in the case's CSV files). It joins enrich/ and report/,
two packages of one layer that know nothing of each other, so it lives in investigate/, above both."""

from __future__ import annotations

from mia_bridge.enrich.api import EnrichResult
from mia_bridge.enrich.outputs import EXPOSED_NAME, PARTIES_NAME
from mia_bridge.enrich.parties import EXTERNAL_DOMAIN
from mia_bridge.evidence.redaction import Redactor
from mia_bridge.report.html import ReportTable

MAX_PARTIES = 200
MAX_MESSAGES = 200
PARTY_COLUMNS = ["Party", "Type", "Internal", "Messages read", "Potentially exposed", "As sender", "As recipient",
                 "Earliest (UTC)", "Latest (UTC)"]
MESSAGE_COLUMNS = ["InternetMessageId", "Exposure", "First access (UTC)", "Sender", "Recipients", "Subject",
                   "Received (UTC)", "Direction", "Metadata"]


def _when(value: object) -> str:
    return value.strftime("%Y-%m-%d %H:%M") if hasattr(value, "strftime") else ""


def enrich_report_tables(result: EnrichResult | None, redactor: Redactor | None = None) -> list[ReportTable]:
    """The "Affected parties" tables of one enrichment (none when it did not run), redacted as the CSVs are."""
    if result is None:
        return []
    redactor = redactor or Redactor()
    counts = result.summary.get("counts", {})
    note = (f"Every address and external domain on the {counts.get('accessed_ids', 0)} message(s) read in the "
            f"attacker's context and the {counts.get('potentially_exposed', 0)} potentially exposed by folder syncs "
            "and throttled windows, from message trace"
            + (" and the mailbox" if result.summary.get("mailbox_metadata", {}).get("allowed") else "")
            + f". Full list: {PARTIES_NAME}.")
    listing = result.summary.get("mailbox_metadata", {}).get("potential_listing")
    if listing:
        note += f" {listing[0].upper()}{listing[1:]}."
    if result.trace_unavailable:
        note += (f" Message trace was unavailable ({redactor.text(result.trace_unavailable)}): parties could not be "
                 "listed.")
    parties = [
        {
            "Party": redactor.domain(p.party) if p.party_type == EXTERNAL_DOMAIN else redactor.address(p.party),
            "Type": p.party_type.replace("_", " "), "Internal": "yes" if p.internal else "no",
            "Messages read": str(p.accessed_messages), "Potentially exposed": str(p.potentially_exposed_messages),
            "As sender": str(p.as_sender), "As recipient": str(p.as_recipient),
            "Earliest (UTC)": _when(p.earliest), "Latest (UTC)": _when(p.latest),
        }
        for p in result.parties[:MAX_PARTIES]
    ]
    if len(result.parties) > MAX_PARTIES:
        note += f" Showing {MAX_PARTIES} of {len(result.parties)}."
    accessed = result.accessed
    messages = [
        {
            "InternetMessageId": m.internet_message_id, "Exposure": m.exposure.replace("_", " "),
            "First access (UTC)": _when(m.first_access),
            "Sender": redactor.address(m.meta.sender) if m.meta else "",
            "Recipients": "; ".join(redactor.address(a) for a in m.meta.recipients) if m.meta else "",
            "Subject": redactor.subject(m.meta.subject) if m.meta else "",
            "Received (UTC)": _when(m.meta.received if m.meta else None),
            "Direction": m.meta.direction if m.meta else "",
            "Metadata": m.meta.source if m.meta else redactor.text(m.note),
        }
        for m in accessed[:MAX_MESSAGES]
    ]
    message_note = (f"Each message read (bind) in the attacker's context with its sender and recipients. Potentially "
                    f"exposed messages and every column are in {EXPOSED_NAME}.")
    if len(accessed) > MAX_MESSAGES:
        message_note += f" Showing {MAX_MESSAGES} of {len(accessed)}."
    return [
        ReportTable("Affected parties", note, list(PARTY_COLUMNS), parties),
        ReportTable("Exposed messages: sender, recipients, subject", message_note, list(MESSAGE_COLUMNS), messages),
    ]
