-- throttled_windows: a throttled record opens a 24-hour window (Microsoft: auditing stops for 24 h); windows
-- of one mailbox that overlap or touch are merged. In (mailbox, time) order a record opens a new window when
-- it is another mailbox's or comes more than 24 h after the mailbox's previous throttled record.
WITH throttled AS (
    SELECT COALESCE(mailbox, '') AS mailbox, creation_time AS at_time
    FROM events
    WHERE COALESCE(is_throttled, FALSE)
),
marked AS (
    SELECT
        mailbox, at_time,
        CASE
            WHEN LAG(at_time) OVER (PARTITION BY mailbox ORDER BY at_time) IS NULL THEN 1
            WHEN at_time > LAG(at_time) OVER (PARTITION BY mailbox ORDER BY at_time) + INTERVAL 24 HOUR THEN 1
            ELSE 0
        END AS opens
    FROM throttled
),
numbered AS (
    SELECT
        mailbox, at_time,
        SUM(opens) OVER (PARTITION BY mailbox ORDER BY at_time ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW)
            AS window_no
    FROM marked
)
SELECT
    mailbox,
    MIN(at_time) AS window_start,
    MAX(at_time) + INTERVAL 24 HOUR AS window_end,
    COUNT(*) AS throttled_events,
    ROW_NUMBER() OVER (ORDER BY mailbox, MIN(at_time)) AS seq
FROM numbered
GROUP BY mailbox, window_no
ORDER BY seq
