"""Canonical column names and dtypes of every table analysis produces (snake_case; times are UTC)."""

from __future__ import annotations

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
