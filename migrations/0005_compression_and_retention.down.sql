-- Back to 0001: its compression settings (chunks compressed since keep the new ones until
-- recompressed), its maintenance function, refresh windows of two and three days and the
-- aggregates' default chunk interval (ten times the spans' one day).
DO $$
DECLARE
    t text;
BEGIN
    IF observatory_uses_timescaledb() THEN
        ALTER TABLE spans RESET (timescaledb.sparse_index);
        ALTER TABLE spans SET (timescaledb.compress_segmentby = 'service_name',
                               timescaledb.compress_orderby = 'start_time DESC, trace_id');
        ALTER TABLE span_events RESET (timescaledb.sparse_index);
        ALTER TABLE span_events SET (timescaledb.compress_orderby = 'span_start_time DESC, trace_id');
        ALTER TABLE span_links RESET (timescaledb.sparse_index);
        ALTER TABLE span_links SET (timescaledb.compress_orderby = 'span_start_time DESC, trace_id');
        PERFORM _observatory_set_refresh('span_rollups_1m', interval '2 days', interval '1 minute');
        PERFORM _observatory_set_refresh('span_rollups_1h', interval '3 days', interval '1 hour');
        FOREACH t IN ARRAY ARRAY['span_rollups_1m', 'span_rollups_1h'] LOOP
            PERFORM set_chunk_time_interval(
                format('%I.%I', c.materialization_hypertable_schema, c.materialization_hypertable_name)::regclass, interval '10 days')
            FROM timescaledb_information.continuous_aggregates c WHERE c.view_name = t;
        END LOOP;
    END IF;
END
$$;

CREATE OR REPLACE FUNCTION _observatory_maintain_hypertables(retention_days integer, compress_after_days integer,
                                                  chunk_interval interval)
RETURNS text
LANGUAGE plpgsql
SET search_path = public, pg_temp
AS $$
DECLARE
    t text;
    changed integer := 0;
BEGIN
    FOREACH t IN ARRAY ARRAY['spans', 'span_events', 'span_links'] LOOP
        PERFORM set_chunk_time_interval(t::regclass, chunk_interval);
        changed := changed + _observatory_set_policy(t, 'policy_retention', retention_days)::integer;
        changed := changed + _observatory_set_policy(t, 'policy_compression', compress_after_days)::integer;
    END LOOP;
    FOREACH t IN ARRAY ARRAY['span_rollups_1m', 'span_rollups_1h'] LOOP
        changed := changed + _observatory_set_policy(t, 'policy_retention', retention_days)::integer;
    END LOOP;
    RETURN format('hypertables: chunk interval %s, retention %s days, compression after %s days (%s policies changed)',
                  chunk_interval, retention_days, compress_after_days, changed);
END
$$;

DROP FUNCTION _observatory_set_refresh(text, interval, interval);
