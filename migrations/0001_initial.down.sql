-- The roles stay: they are cluster-wide and other databases may use them.
DROP FUNCTION IF EXISTS observatory_ensure_partitions(date, date);
DROP TABLE IF EXISTS span_links;
DROP TABLE IF EXISTS span_events;
DROP TABLE IF EXISTS spans;
REVOKE USAGE ON SCHEMA public FROM observatory_app, observatory_readonly;
