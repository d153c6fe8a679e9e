-- summary.json's lists: the distinct non-empty mailboxes, client IPs and AppIds of the events, sorted; and
-- the unique records per operation (list 'operations', the count in n).
SELECT list, value, n
FROM (
    SELECT 'mailboxes' AS list, mailbox AS value, CAST(COUNT(*) AS BIGINT) AS n
    FROM events WHERE mailbox <> '' GROUP BY mailbox
    UNION ALL
    SELECT 'client_ips' AS list, client_ip AS value, CAST(COUNT(*) AS BIGINT) AS n
    FROM events WHERE client_ip <> '' GROUP BY client_ip
    UNION ALL
    SELECT 'app_ids' AS list, app_id AS value, CAST(COUNT(*) AS BIGINT) AS n
    FROM events WHERE app_id <> '' GROUP BY app_id
    UNION ALL
    SELECT 'operations' AS list, operation AS value, CAST(COUNT(*) AS BIGINT) AS n
    FROM unique_records WHERE operation IS NOT NULL GROUP BY operation
) AS lists
ORDER BY list, value
