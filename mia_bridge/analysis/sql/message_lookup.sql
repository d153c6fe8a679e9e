-- message_lookup (--message-ids): per requested id (lookup_requests, in the list's order), whether it was
-- accessed (bind), possibly exposed (its mailbox, or any mailbox when the list names none, was synced or
-- throttled in the period) or not seen.
WITH hits AS (
    SELECT
        r.entry_no,
        COUNT(*) AS accesses,
        MIN(b.creation_time) AS first_access,
        MAX(b.creation_time) AS last_access,
        COALESCE(ARRAY_TO_STRING(LIST_SORT(LIST_DISTINCT(LIST(b.mailbox) FILTER (WHERE b.mailbox <> ''))), ';'), '')
            AS mailboxes,
        COALESCE(ARRAY_TO_STRING(LIST_SORT(LIST_DISTINCT(LIST(b.client_ip) FILTER (WHERE b.client_ip <> ''))), ';'),
                 '') AS client_ips,
        COALESCE(ARRAY_TO_STRING(LIST_SORT(LIST_DISTINCT(LIST(b.app_id) FILTER (WHERE b.app_id <> ''))), ';'), '')
            AS app_ids,
        COALESCE(ARRAY_TO_STRING(LIST_SORT(LIST_DISTINCT(LIST(b.session_id) FILTER (WHERE b.session_id <> ''))),
                                 ';'), '') AS session_ids
    FROM lookup_requests AS r
    JOIN bind_items AS b
        ON b.internet_message_id = r.internet_message_id AND (r.mailbox IS NULL OR b.mailbox = r.mailbox)
    GROUP BY r.entry_no
),
synced_boxes AS (SELECT DISTINCT mailbox FROM synced_folders WHERE mailbox IS NOT NULL),
throttled_boxes AS (SELECT DISTINCT mailbox FROM throttled_windows WHERE mailbox IS NOT NULL),
synced_text AS (
    SELECT r.entry_no,
           'mailbox ' || ARRAY_TO_STRING(LIST_SORT(LIST(s.mailbox)), ' was synced in the period; mailbox ')
           || ' was synced in the period' AS text
    FROM lookup_requests AS r
    JOIN synced_boxes AS s ON r.mailbox IS NULL OR r.mailbox = s.mailbox
    GROUP BY r.entry_no
),
throttled_text AS (
    SELECT r.entry_no,
           'mailbox ' || ARRAY_TO_STRING(LIST_SORT(LIST(t.mailbox)),
                                         ' was throttled (24 h unaudited) in the period; mailbox ')
           || ' was throttled (24 h unaudited) in the period' AS text
    FROM lookup_requests AS r
    JOIN throttled_boxes AS t ON r.mailbox IS NULL OR r.mailbox = t.mailbox
    GROUP BY r.entry_no
),
decided AS (
    SELECT
        r.entry_no, r.internet_message_id, r.requested_as, r.mailbox, h.accesses, h.first_access, h.last_access,
        h.mailboxes, h.client_ips, h.app_ids, h.session_ids, s.text AS synced, t.text AS throttled,
        CASE
            WHEN h.entry_no IS NOT NULL THEN 'accessed'
            WHEN s.text IS NOT NULL OR t.text IS NOT NULL THEN 'possibly_exposed'
            ELSE 'not_seen'
        END AS status
    FROM lookup_requests AS r
    LEFT JOIN hits AS h ON h.entry_no = r.entry_no
    LEFT JOIN synced_text AS s ON s.entry_no = r.entry_no
    LEFT JOIN throttled_text AS t ON t.entry_no = r.entry_no
)
SELECT
    internet_message_id,
    requested_as,
    status,
    CAST(COALESCE(accesses, 0) AS BIGINT) AS accesses,
    first_access,
    last_access,
    CASE WHEN status = 'accessed' THEN mailboxes ELSE COALESCE(mailbox, '') END AS mailboxes,
    COALESCE(client_ips, '') AS client_ips,
    COALESCE(app_ids, '') AS app_ids,
    COALESCE(session_ids, '') AS session_ids,
    COALESCE(CONCAT_WS('; ', synced, throttled,
                       CASE WHEN mailbox IS NULL AND status = 'possibly_exposed'
                            THEN 'the list gives no mailbox for this id, so every synced/throttled mailbox counts'
                       END), '') AS exposure_reasons,
    entry_no AS seq
FROM decided
ORDER BY seq
