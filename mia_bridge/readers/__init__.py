"""Readers for every audit-log export format; importing this package registers them all."""

from mia_bridge.readers.base import Quarantined, RawRecord, Reader, Sniff
from mia_bridge.readers.defender_cloudappevents import DefenderCloudAppEventsReader
from mia_bridge.readers.mailbox_audit_log_csv import MailboxAuditLogCsvReader
from mia_bridge.readers.purview_audit_csv import PurviewAuditCsvReader
from mia_bridge.readers.purview_classic_csv import PurviewClassicCsvReader
from mia_bridge.readers.raw_auditdata_json import RawAuditDataJsonReader
from mia_bridge.readers.registry import detect, format_names, open_input, register, sniff
from mia_bridge.readers.sentinel_officeactivity import SentinelOfficeActivityCsvReader, SentinelOfficeActivityJsonReader
from mia_bridge.readers.sparrow_csv import SparrowCsvReader
from mia_bridge.readers.unified_audit_log_csv import UnifiedAuditLogCsvReader

for _cls in (
    RawAuditDataJsonReader,
    PurviewAuditCsvReader,
    PurviewClassicCsvReader,
    UnifiedAuditLogCsvReader,
    SparrowCsvReader,
    SentinelOfficeActivityCsvReader,
    SentinelOfficeActivityJsonReader,
    DefenderCloudAppEventsReader,
    MailboxAuditLogCsvReader,
):
    register(_cls())

__all__ = ["Quarantined", "RawRecord", "Reader", "Sniff", "detect", "format_names", "open_input", "sniff"]
