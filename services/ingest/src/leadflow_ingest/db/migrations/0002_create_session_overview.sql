-- A subject's open (server-assigned) session lives on its `subjects` row, which every batch
-- of the subject locks and rewrites anyway; `sessions` receives a session once it is closed
-- (a later event starts a new one), and client-assigned sessions as they change. This view
-- is every session, closed or open.
CREATE VIEW session_overview AS
SELECT tenant_id, session_id, subject_key, started_at, last_seen_at, event_count, page_views,
       client_assigned, last_seen_at - started_at AS duration, page_views = 1 AS bounce,
       false AS open
FROM sessions
UNION ALL
SELECT tenant_id, session_id, subject_key, session_started_at, session_last_seen_at,
       session_event_count, session_page_views, false,
       session_last_seen_at - session_started_at, session_page_views = 1, true
FROM subjects
WHERE session_id IS NOT NULL;
