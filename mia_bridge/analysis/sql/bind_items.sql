-- items: the FolderItems entries of bind events (repeats kept, empty ids left out), with the event's context,
-- in the events' order, then the entries' order in the record (pos). ctx: the event's (events.sql).
SELECT
    e.record_id, e.creation_time, e.mailbox, i.folder_path, i.internet_message_id, i.internet_message_id_raw,
    i.size_in_bytes, e.client_ip, e.app_id, e.client_app_id, e.session_id, e.client_info_string,
    e.seq, e.ctx, i.pos
FROM items AS i
JOIN events AS e ON e.rec = i.rec
WHERE e.mail_access_type = 'Bind' AND i.internet_message_id <> ''
ORDER BY seq, pos
