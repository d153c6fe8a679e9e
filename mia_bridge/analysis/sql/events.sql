-- events: one row per MailItemsAccessed record in the period, by time then input position (seq).
-- ctx (not written): the event's access context as one integer, its context's first seq (contexts.sql), so
-- the item rows carry it (bind_items) and are counted per context without a join on the five strings.
WITH numbered AS (
    SELECT
        creation_time, record_id, mailbox, user_id, mail_access_type, is_throttled, session_id, client_ip, app_id,
        client_app_id, client_info_string, logon_type, operation_count, folder_count, item_count,
        message_ids_lost, record_type, source_format, source_file, source_line,
        rec,
        ROW_NUMBER() OVER (ORDER BY creation_time NULLS LAST, rec) AS seq
    FROM unique_records
    WHERE in_period AND LOWER(operation) = 'mailitemsaccessed'
)
SELECT
    *,
    MIN(seq) OVER (PARTITION BY COALESCE(mailbox, ''), COALESCE(client_ip, ''), COALESCE(app_id, ''),
                                COALESCE(client_info_string, ''), COALESCE(session_id, '')) AS ctx
FROM numbered
ORDER BY seq
