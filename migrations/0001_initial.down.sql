-- The roles stay: they are cluster-wide and other databases may use them. So does the
-- timescaledb extension: other schemas of this database may use it.
DROP FUNCTION IF EXISTS observatory_maintain(integer, integer, interval, integer);
DROP FUNCTION IF EXISTS _observatory_maintain_partitions(integer, integer);
DROP FUNCTION IF EXISTS _observatory_maintain_hypertables(integer, integer, interval);
DROP FUNCTION IF EXISTS _observatory_set_policy(text, text, integer);
DROP FUNCTION IF EXISTS _observatory_policy(text, text);
DROP FUNCTION IF EXISTS observatory_ensure_partitions(date, date);
-- The hourly tier first: with TimescaleDB it is an aggregate on the per-minute one.
DO $$
DECLARE
    tier text;
BEGIN
    FOREACH tier IN ARRAY ARRAY['span_rollups_1h', 'span_rollups_1m'] LOOP
        IF EXISTS (SELECT FROM pg_class WHERE relname = tier AND relkind = 'v') THEN
            EXECUTE format('DROP MATERIALIZED VIEW %I', tier);  -- a continuous aggregate is dropped as a view
        END IF;
    END LOOP;
END
$$;
DROP TABLE IF EXISTS span_rollups_1h;
DROP TABLE IF EXISTS span_rollups_1m;
DROP TABLE IF EXISTS span_links;
DROP TABLE IF EXISTS span_events;
DROP TABLE IF EXISTS spans;
DROP FUNCTION IF EXISTS observatory_uses_timescaledb();
REVOKE USAGE ON SCHEMA public FROM observatory_app, observatory_readonly;
