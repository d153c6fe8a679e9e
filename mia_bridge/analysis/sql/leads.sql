-- leads: every context scored by the reasons that apply to it (each with its written message), best first.
-- The score tokens stand for leads.SCORES and the py_repr token for Python's repr() of the client string
-- (filled in by mia_bridge.analysis.sql.statement, the one place either is defined).
WITH ctx AS (
    SELECT
        seq AS ctx_seq, COALESCE(mailbox, '') AS mailbox, COALESCE(client_ip, '') AS client_ip,
        COALESCE(app_id, '') AS app_id, client_info_string, session_id, first_seen, last_seen, events,
        items_accessed, COALESCE(sync_events, 0) AS sync_events, COALESCE(throttled_events, 0) AS throttled_events,
        COALESCE(client_app_ids, '') AS client_app_ids,
        CASE WHEN COALESCE(client_info_string, '') = '' THEN '(no client string)' ELSE client_info_string END
            AS client
    FROM contexts
),
bad_ips AS (SELECT DISTINCT value FROM option_values WHERE list = 'suspicious_ip'),
bad_apps AS (SELECT DISTINCT value FROM option_values WHERE list = 'suspicious_app'),
good_ips AS (SELECT DISTINCT value FROM option_values WHERE list = 'known_good_ip'),
microsoft_apps AS (SELECT DISTINCT value FROM option_values WHERE list = 'microsoft_app'),
throttled_mailboxes AS (SELECT DISTINCT mailbox FROM throttled_windows),
client_apps AS (
    SELECT c.ctx_seq, a.app
    FROM ctx AS c
    CROSS JOIN UNNEST(STRING_SPLIT(c.client_app_ids, ';')) AS a(app)
),
all_apps AS (
    SELECT ctx_seq, app FROM client_apps WHERE app <> ''
    UNION ALL
    SELECT ctx_seq, app_id AS app FROM ctx WHERE app_id <> ''
),
foreign_apps AS (
    SELECT a.ctx_seq, ARRAY_TO_STRING(LIST_SORT(LIST_DISTINCT(LIST(a.app))), ', ') AS apps
    FROM all_apps AS a
    LEFT JOIN microsoft_apps AS m ON m.value = a.app
    WHERE m.value IS NULL
    GROUP BY a.ctx_seq
),
client_bad AS (
    SELECT DISTINCT c.ctx_seq
    FROM client_apps AS c
    JOIN bad_apps AS b ON b.value = c.app
),
ip_counts AS (SELECT mailbox, client_ip, SUM(events) AS value_events FROM ctx GROUP BY mailbox, client_ip),
ip_usual AS (
    SELECT mailbox, client_ip AS usual, value_events AS usual_events
    FROM (
        SELECT mailbox, client_ip, value_events,
               ROW_NUMBER() OVER (PARTITION BY mailbox ORDER BY value_events DESC, client_ip) AS pick
        FROM ip_counts
        WHERE client_ip <> ''
    ) AS ranked
    WHERE pick = 1
),
app_counts AS (SELECT mailbox, app_id, SUM(events) AS value_events FROM ctx GROUP BY mailbox, app_id),
app_usual AS (
    SELECT mailbox, app_id AS usual, value_events AS usual_events
    FROM (
        SELECT mailbox, app_id, value_events,
               ROW_NUMBER() OVER (PARTITION BY mailbox ORDER BY value_events DESC, app_id) AS pick
        FROM app_counts
        WHERE app_id <> ''
    ) AS ranked
    WHERE pick = 1
),
facts AS (
    SELECT
        c.*,
        c.client_ip <> '' AND bi.value IS NOT NULL AS bad_ip,
        (c.app_id <> '' AND ba.value IS NOT NULL) OR cb.ctx_seq IS NOT NULL AS bad_app,
        c.client_ip <> '' AND gi.value IS NULL AND iu.usual IS NOT NULL AND c.client_ip <> iu.usual
            AND ic.value_events < iu.usual_events AS rare_ip,
        c.app_id <> '' AND au.usual IS NOT NULL AND c.app_id <> au.usual
            AND ac.value_events < au.usual_events AS rare_app,
        COALESCE(fa.apps, '') <> '' AND c.items_accessed + c.sync_events > 0 AS foreign_app,
        c.sync_events > 0 AND NOT (LOWER(c.client) LIKE '%outlook%' OR LOWER(c.client) LIKE '%msexchangerpc%')
            AS unusual_sync,
        c.sync_events > 0 AND (LOWER(c.client) LIKE '%outlook%' OR LOWER(c.client) LIKE '%msexchangerpc%')
            AS usual_sync,
        c.throttled_events > 0 AS throttled_here,
        c.throttled_events = 0 AND tm.mailbox IS NOT NULL AS throttled_elsewhere,
        c.client_ip <> '' AND gi.value IS NOT NULL AS good_ip,
        CAST(ic.value_events AS VARCHAR) AS ip_events_text,
        COALESCE(iu.usual, '') AS usual_ip, CAST(iu.usual_events AS VARCHAR) AS usual_ip_events_text,
        CAST(ac.value_events AS VARCHAR) AS app_events_text,
        COALESCE(au.usual, '') AS usual_app, CAST(au.usual_events AS VARCHAR) AS usual_app_events_text,
        COALESCE(fa.apps, '') AS foreign_text
    FROM ctx AS c
    LEFT JOIN bad_ips AS bi ON bi.value = c.client_ip
    LEFT JOIN bad_apps AS ba ON ba.value = c.app_id
    LEFT JOIN client_bad AS cb ON cb.ctx_seq = c.ctx_seq
    LEFT JOIN good_ips AS gi ON gi.value = c.client_ip
    LEFT JOIN ip_counts AS ic ON ic.mailbox = c.mailbox AND ic.client_ip = c.client_ip
    LEFT JOIN ip_usual AS iu ON iu.mailbox = c.mailbox
    LEFT JOIN app_counts AS ac ON ac.mailbox = c.mailbox AND ac.app_id = c.app_id
    LEFT JOIN app_usual AS au ON au.mailbox = c.mailbox
    LEFT JOIN foreign_apps AS fa ON fa.ctx_seq = c.ctx_seq
    LEFT JOIN throttled_mailboxes AS tm ON tm.mailbox = c.mailbox
),
scored AS (
    SELECT
        *,
        CAST(
            (CASE WHEN bad_ip THEN __score_user_suspicious_ip__ ELSE 0 END)
            + (CASE WHEN bad_app THEN __score_user_suspicious_app__ ELSE 0 END)
            + (CASE WHEN rare_ip THEN __score_ip_rare_for_mailbox__ ELSE 0 END)
            + (CASE WHEN rare_app THEN __score_app_rare_for_mailbox__ ELSE 0 END)
            + (CASE WHEN foreign_app THEN __score_non_microsoft_app__ ELSE 0 END)
            + (CASE WHEN unusual_sync THEN __score_sync_unusual_client__ ELSE 0 END)
            + (CASE WHEN usual_sync THEN __score_sync_context__ ELSE 0 END)
            + (CASE WHEN throttled_here THEN __score_throttled_context__ ELSE 0 END)
            + (CASE WHEN throttled_elsewhere THEN __score_throttled_mailbox__ ELSE 0 END)
            + (CASE WHEN good_ip THEN __score_user_known_good_ip__ ELSE 0 END)
        AS BIGINT) AS score,
        (CASE WHEN bad_ip THEN 'IP ' || client_ip || ' is on the --suspicious-ip list; ' ELSE '' END)
        || (CASE WHEN bad_app THEN 'app ' || (CASE WHEN app_id <> '' THEN app_id ELSE client_app_ids END)
                 || ' is on the --suspicious-app list; ' ELSE '' END)
        || (CASE WHEN rare_ip THEN 'IP ' || client_ip || ' made ' || ip_events_text || ' of this mailbox''s events; '
                 || 'its usual IP ' || usual_ip || ' made ' || usual_ip_events_text || '; ' ELSE '' END)
        || (CASE WHEN rare_app THEN 'AppId ' || app_id || ' made ' || app_events_text || ' of this mailbox''s events; '
                 || 'its usual AppId ' || usual_app || ' made ' || usual_app_events_text || '; ' ELSE '' END)
        || (CASE WHEN foreign_app THEN 'app ' || foreign_text || ' is not a known Microsoft first-party app; '
                 ELSE '' END)
        || (CASE WHEN unusual_sync THEN CAST(sync_events AS VARCHAR) || ' sync event(s) from client '
                 || __py_repr_client__ || ': treat every item in the synced folders as exposed; ' ELSE '' END)
        || (CASE WHEN usual_sync THEN CAST(sync_events AS VARCHAR)
                 || ' sync event(s): synced folders count as exposed; ' ELSE '' END)
        || (CASE WHEN throttled_here THEN CAST(throttled_events AS VARCHAR)
                 || ' throttled record(s): 24 h of unaudited access; ' ELSE '' END)
        || (CASE WHEN throttled_elsewhere THEN 'mailbox was throttled in the period; ' ELSE '' END)
        || (CASE WHEN good_ip THEN 'IP ' || client_ip || ' is on the --known-good-ip list; ' ELSE '' END)
            AS reason_text
    FROM facts
)
SELECT
    ROW_NUMBER() OVER (ORDER BY score DESC, items_accessed DESC, first_seen, ctx_seq) AS rank,
    score, mailbox, client_ip, app_id, client_info_string, session_id, first_seen, last_seen, events,
    items_accessed, sync_events,
    CASE WHEN reason_text = '' THEN 'no indicator' ELSE LEFT(reason_text, LENGTH(reason_text) - 2) END AS reasons
FROM scored
ORDER BY rank
