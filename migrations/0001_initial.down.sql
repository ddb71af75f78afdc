-- The roles stay: they are cluster-wide and other databases may use them. So does the
-- timescaledb extension: other schemas of this database may use it.
DROP FUNCTION IF EXISTS observatory_maintain(integer, integer, interval, integer);
DROP FUNCTION IF EXISTS _observatory_maintain_partitions(integer, integer);
DROP FUNCTION IF EXISTS _observatory_maintain_hypertables(integer, integer, interval);
DROP FUNCTION IF EXISTS _observatory_set_policy(text, text, integer);
DROP FUNCTION IF EXISTS _observatory_policy(text, text);
DROP FUNCTION IF EXISTS observatory_ensure_partitions(date, date);
DO $$
BEGIN
    IF EXISTS (SELECT FROM pg_class WHERE relname = 'span_rollups_1m' AND relkind = 'v') THEN
        DROP MATERIALIZED VIEW span_rollups_1m;  -- a continuous aggregate is dropped as a view
    END IF;
END
$$;
DROP TABLE IF EXISTS span_rollups_1m;
DROP TABLE IF EXISTS span_links;
DROP TABLE IF EXISTS span_events;
DROP TABLE IF EXISTS spans;
DROP FUNCTION IF EXISTS observatory_uses_timescaledb();
REVOKE USAGE ON SCHEMA public FROM observatory_app, observatory_readonly;
