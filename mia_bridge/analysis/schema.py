"""Canonical column names and dtypes of every table analysis produces (snake_case; times are UTC)."""

from __future__ import annotations

import pyarrow as pa

RECORD_COLUMNS: dict[str, str] = {
    "record_id": "string",
    "creation_time": "datetime64[ns, UTC]",
    "operation": "string",
    "record_type": "Int64",
    "record_type_name": "string",
    "workload": "string",
    "user_id": "string",
    "mailbox": "string",  # MailboxOwnerUPN, else UserId; lower-cased
    "mailbox_guid": "string",
    "client_ip": "string",  # port and brackets removed, lower-cased
    "client_ip_raw": "string",
    "session_id": "string",
    "app_id": "string",
    "client_app_id": "string",
    "client_info_string": "string",
    "logon_type": "string",
    "result_status": "string",
    "mail_access_type": "string",  # Bind | Sync | other value as given
    "is_throttled": "boolean",
    "operation_count": "Int64",
    "folder_count": "Int64",
    "item_count": "Int64",
    "message_ids_lost": "boolean",
    "flags": "string",  # ';'-joined reader/normaliser flags
    "in_period": "boolean",
    "source_format": "string",
    "source_file": "string",
    "source_line": "Int64",
    "fingerprint": "UInt64",  # label of the whole record's content (dedup.py): equal within one Id means one
    # record; missing when the record's Id occurs once in the run (it is compared with nothing)
    "content_hash": "string",  # whole-record hash, only for records without an Id
    # The record as read (AuditData after decoding), JSON. Empty for records of clean JSON-lines inputs read
    # by the vectorised path: their text is line source_line of source_file.
    "raw_json": "string",
}

EVENT_COLUMNS = [
    "creation_time", "record_id", "mailbox", "user_id", "mail_access_type", "is_throttled", "session_id",
    "client_ip", "app_id", "client_app_id", "client_info_string", "logon_type", "operation_count",
    "folder_count", "item_count", "message_ids_lost", "record_type", "source_format", "source_file", "source_line",
]

ITEM_COLUMNS = [
    "record_id", "creation_time", "mailbox", "folder_path", "internet_message_id", "internet_message_id_raw",
    "size_in_bytes", "client_ip", "app_id", "client_app_id", "session_id", "client_info_string",
]

SYNCED_FOLDER_COLUMNS = [
    "record_id", "creation_time", "mailbox", "folder_path", "client_ip", "app_id", "client_app_id",
    "client_info_string", "session_id",
]

THROTTLED_WINDOW_COLUMNS = ["mailbox", "window_start", "window_end", "throttled_events"]

CONTEXT_KEY = ["mailbox", "client_ip", "app_id", "client_info_string", "session_id"]
CONTEXT_COLUMNS = [
    *CONTEXT_KEY, "first_seen", "last_seen", "events", "bind_events", "sync_events", "throttled_events",
    "items_accessed", "unique_message_ids", "synced_folders", "client_app_ids",
]

LEAD_COLUMNS = ["rank", "score", *CONTEXT_KEY, "first_seen", "last_seen", "events", "items_accessed",
                "sync_events", "reasons"]

MESSAGE_LOOKUP_COLUMNS = [
    "internet_message_id", "requested_as", "status", "accesses", "first_access", "last_access", "mailboxes",
    "client_ips", "app_ids", "session_ids", "exposure_reasons",
]


def arrow_schema(columns: list[str], text: dict[str, str] | None = None) -> pa.Schema:
    """The Arrow schema a table is written with: text as ``large_string`` (``text`` names exceptions), UTC times
    in nanoseconds, ``Int64`` as int64, ``boolean`` as bool; columns not in ``RECORD_COLUMNS`` by ``_OTHER_TYPES``."""
    kinds = {**RECORD_COLUMNS, **_OTHER_TYPES}
    arrow = {"string": pa.large_string(), "datetime64[ns, UTC]": pa.timestamp("ns", tz="UTC"), "Int64": pa.int64(),
             "int64": pa.int64(), "boolean": pa.bool_(), "UInt64": pa.uint64()}
    return pa.schema([(c, pa.string() if (text or {}).get(c) == "string" else arrow[kinds[c]]) for c in columns])


_OTHER_TYPES = {
    "folder_path": "string", "internet_message_id": "string", "internet_message_id_raw": "string",
    "size_in_bytes": "Int64", "window_start": "datetime64[ns, UTC]", "window_end": "datetime64[ns, UTC]",
    "throttled_events": "int64", "first_seen": "datetime64[ns, UTC]", "last_seen": "datetime64[ns, UTC]",
    "events": "int64", "bind_events": "int64", "sync_events": "int64", "items_accessed": "int64",
    "unique_message_ids": "int64", "synced_folders": "int64", "client_app_ids": "string", "rank": "int64",
    "score": "int64", "reasons": "string", "requested_as": "string", "status": "string", "accesses": "int64",
    "first_access": "datetime64[ns, UTC]", "last_access": "datetime64[ns, UTC]", "mailboxes": "string",
    "client_ips": "string", "app_ids": "string", "session_ids": "string", "exposure_reasons": "string",
}

# Every table's written schema (leads' reasons have always been written as ``string``, not ``large_string``).
ARROW_SCHEMAS: dict[str, pa.Schema] = {
    # records.parquet: as read, then the de-duplication's label and the period flag
    "records": arrow_schema([*(c for c in RECORD_COLUMNS if c not in ("in_period", "fingerprint")), "fingerprint",
                             "in_period"]),
    "events": arrow_schema(EVENT_COLUMNS),
    "items": arrow_schema(ITEM_COLUMNS),
    "synced_folders": arrow_schema(SYNCED_FOLDER_COLUMNS),
    "throttled_windows": arrow_schema(THROTTLED_WINDOW_COLUMNS),
    "contexts": arrow_schema(CONTEXT_COLUMNS),
    "leads": arrow_schema(LEAD_COLUMNS, {"reasons": "string"}),
    "message_lookup": arrow_schema(MESSAGE_LOOKUP_COLUMNS),
}
