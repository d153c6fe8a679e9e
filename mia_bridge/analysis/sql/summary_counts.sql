-- summary.json's counts (one row): records, the period, MailItemsAccessed events, items, folders, windows.
WITH rec AS (
    SELECT
        COUNT(*) AS records_unique,
        SUM(CASE WHEN in_period THEN 1 ELSE 0 END) AS records_in_period,
        MIN(creation_time) AS first_record,
        MAX(creation_time) AS last_record
    FROM unique_records
),
ev AS (
    SELECT
        COUNT(*) AS events,
        SUM(CASE WHEN mail_access_type = 'Bind' THEN 1 ELSE 0 END) AS bind_events,
        SUM(CASE WHEN mail_access_type = 'Sync' THEN 1 ELSE 0 END) AS sync_events,
        SUM(CASE WHEN mail_access_type IS NULL OR mail_access_type NOT IN ('Bind', 'Sync') THEN 1 ELSE 0 END)
            AS other_access_type_events,
        SUM(CASE WHEN COALESCE(is_throttled, FALSE) THEN 1 ELSE 0 END) AS throttled_events,
        COUNT(DISTINCT CASE WHEN session_id <> '' THEN session_id END) AS sessions,
        SUM(CASE WHEN COALESCE(message_ids_lost, FALSE) THEN 1 ELSE 0 END) AS events_with_message_ids_lost
    FROM events
),
it AS (
    SELECT COUNT(*) AS items_accessed, COUNT(DISTINCT internet_message_id) AS unique_internet_message_ids
    FROM bind_items
),
sf AS (SELECT COUNT(*) AS synced_folders FROM (SELECT DISTINCT mailbox, folder_path FROM synced_folders) AS d),
tw AS (SELECT COUNT(*) AS throttled_windows FROM throttled_windows),
cx AS (SELECT COUNT(*) AS contexts FROM contexts)
SELECT
    CAST(rec.records_unique AS BIGINT) AS records_unique,
    CAST(COALESCE(rec.records_in_period, 0) AS BIGINT) AS records_in_period,
    rec.first_record,
    rec.last_record,
    CAST(ev.events AS BIGINT) AS events,
    CAST(COALESCE(ev.bind_events, 0) AS BIGINT) AS bind_events,
    CAST(COALESCE(ev.sync_events, 0) AS BIGINT) AS sync_events,
    CAST(COALESCE(ev.other_access_type_events, 0) AS BIGINT) AS other_access_type_events,
    CAST(COALESCE(ev.throttled_events, 0) AS BIGINT) AS throttled_events,
    CAST(ev.sessions AS BIGINT) AS sessions,
    CAST(COALESCE(ev.events_with_message_ids_lost, 0) AS BIGINT) AS events_with_message_ids_lost,
    CAST(it.items_accessed AS BIGINT) AS items_accessed,
    CAST(it.unique_internet_message_ids AS BIGINT) AS unique_internet_message_ids,
    CAST(sf.synced_folders AS BIGINT) AS synced_folders,
    CAST(tw.throttled_windows AS BIGINT) AS throttled_windows,
    CAST(cx.contexts AS BIGINT) AS contexts
FROM rec
CROSS JOIN ev
CROSS JOIN it
CROSS JOIN sf
CROSS JOIN tw
CROSS JOIN cx
