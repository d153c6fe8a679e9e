-- contexts: access contexts (mailbox x IP x AppId x ClientInfoString x SessionId; missing parts are ''), with
-- first/last seen and counts. Ordered by mailbox, first seen, then the order contexts first appear in events.
-- Each event carries its context's number (ctx: the context's first seq, events.sql), and so does each of its
-- item rows (bind_items): the items are counted by one integer key, with no join (a bind event has about six).
WITH keyed AS (
    SELECT
        COALESCE(mailbox, '') AS mailbox, COALESCE(client_ip, '') AS client_ip, COALESCE(app_id, '') AS app_id,
        COALESCE(client_info_string, '') AS client_info_string, COALESCE(session_id, '') AS session_id,
        creation_time, ctx, mail_access_type, is_throttled, client_app_id
    FROM events
),
grouped AS (
    SELECT
        ctx, mailbox, client_ip, app_id, client_info_string, session_id,
        MIN(creation_time) AS first_seen,
        MAX(creation_time) AS last_seen,
        COUNT(*) AS events,
        SUM(CASE WHEN mail_access_type = 'Bind' THEN 1 ELSE 0 END) AS bind_events,
        SUM(CASE WHEN mail_access_type = 'Sync' THEN 1 ELSE 0 END) AS sync_events,
        SUM(CASE WHEN COALESCE(is_throttled, FALSE) THEN 1 ELSE 0 END) AS throttled_events,
        COALESCE(ARRAY_TO_STRING(LIST_SORT(LIST_DISTINCT(LIST(client_app_id) FILTER (WHERE client_app_id <> ''))),
                                 ';'), '') AS client_app_ids
    FROM keyed
    GROUP BY ctx, mailbox, client_ip, app_id, client_info_string, session_id
),
item_ids AS (
    SELECT ctx, internet_message_id, COUNT(*) AS n
    FROM bind_items
    GROUP BY ctx, internet_message_id
),
item_counts AS (
    SELECT ctx, SUM(n) AS items_accessed, COUNT(*) AS unique_message_ids
    FROM item_ids
    GROUP BY ctx
),
folder_counts AS (
    SELECT
        COALESCE(mailbox, '') AS mailbox, COALESCE(client_ip, '') AS client_ip, COALESCE(app_id, '') AS app_id,
        COALESCE(client_info_string, '') AS client_info_string, COALESCE(session_id, '') AS session_id,
        COUNT(DISTINCT folder_path) AS synced_folders
    FROM synced_folders
    GROUP BY 1, 2, 3, 4, 5
)
SELECT
    g.mailbox, g.client_ip, g.app_id, g.client_info_string, g.session_id, g.first_seen, g.last_seen,
    CAST(g.events AS BIGINT) AS events,
    CAST(g.bind_events AS BIGINT) AS bind_events,
    CAST(g.sync_events AS BIGINT) AS sync_events,
    CAST(g.throttled_events AS BIGINT) AS throttled_events,
    CAST(COALESCE(i.items_accessed, 0) AS BIGINT) AS items_accessed,
    CAST(COALESCE(i.unique_message_ids, 0) AS BIGINT) AS unique_message_ids,
    CAST(COALESCE(f.synced_folders, 0) AS BIGINT) AS synced_folders,
    g.client_app_ids,
    ROW_NUMBER() OVER (ORDER BY g.mailbox, g.first_seen, g.ctx) AS seq
FROM grouped AS g
LEFT JOIN item_counts AS i ON i.ctx = g.ctx
LEFT JOIN folder_counts AS f
    ON f.mailbox = g.mailbox AND f.client_ip = g.client_ip AND f.app_id = g.app_id
    AND f.client_info_string = g.client_info_string AND f.session_id = g.session_id
ORDER BY seq
