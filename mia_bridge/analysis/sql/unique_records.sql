-- records.parquet: every record that is not a removed copy, in input order, with in_period.
-- A record without a time is in the period only when the period is open on both ends.
SELECT
    r.record_id, r.creation_time, r.operation, r.record_type, r.record_type_name, r.workload, r.user_id,
    r.mailbox, r.mailbox_guid, r.client_ip, r.client_ip_raw, r.session_id, r.app_id, r.client_app_id,
    r.client_info_string, r.logon_type, r.result_status, r.mail_access_type, r.is_throttled,
    r.operation_count, r.folder_count, r.item_count, r.message_ids_lost, r.flags, r.source_format,
    r.source_file, r.source_line, r.content_hash, r.raw_json, r.fingerprint,
    (CASE WHEN p.start_time IS NULL THEN TRUE ELSE COALESCE(r.creation_time >= p.start_time, FALSE) END)
    AND (CASE WHEN p.end_time IS NULL THEN TRUE ELSE COALESCE(r.creation_time <= p.end_time, FALSE) END)
        AS in_period,
    r.rec
FROM records AS r
CROSS JOIN period AS p
WHERE NOT COALESCE(r.duplicate, FALSE)
ORDER BY rec
