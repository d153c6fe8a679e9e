-- synced_folders: one row per folder of a sync event, in the events' order, then the record's folder order.
SELECT
    e.record_id, e.creation_time, e.mailbox, f.folder_path, e.client_ip, e.app_id, e.client_app_id,
    e.client_info_string, e.session_id,
    ROW_NUMBER() OVER (ORDER BY e.seq, f.pos) AS seq
FROM folders AS f
JOIN events AS e ON e.rec = f.rec
WHERE e.mail_access_type = 'Sync'
ORDER BY seq
