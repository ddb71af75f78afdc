-- Compression that keeps the API's reads fast, and rollups that follow retention.
--
-- On TimescaleDB (measured on 2.28.3, bench/RESULTS.md "Compression settings"):
-- * spans are ordered by start_time alone inside a compressed batch. With trace_id as a
--   second orderby column TimescaleDB keeps only min/max of trace_id per batch, which is
--   useless for a random id, so a trace lookup decompressed every batch of the chunk;
--   bloom filters on trace_id and span_id let it skip all but the few batches that may hold
--   the id (trace by id, the trace-level EXISTS probes of trace search, and the uniqueness
--   check on late spans written into a compressed chunk). minmax on duration_ns serves
--   duration filters. Segments stay by service: the API's service filter reads only that
--   service's batches.
-- * events and links are read by trace id only: ordered by time, a bloom filter on trace_id.
-- Chunks compressed before this migration keep their old settings until they are
-- recompressed (docs/OPERATIONS.md shows how) or dropped by retention.
--
-- The continuous aggregates get chunks of the spans' interval and refresh windows that
-- never reach past the retention period (set by observatory_maintain from its arguments,
-- redefined below); on plain PostgreSQL the rollup tables were already pruned with the
-- partitions, so nothing changes there.
DO $$
BEGIN
    IF observatory_uses_timescaledb() THEN
        ALTER TABLE spans SET (timescaledb.compress_segmentby = 'service_name',
                               timescaledb.compress_orderby = 'start_time DESC',
                               timescaledb.sparse_index = 'bloom(trace_id), bloom(span_id), minmax(duration_ns)');
        ALTER TABLE span_events SET (timescaledb.compress_orderby = 'span_start_time DESC',
                                     timescaledb.sparse_index = 'bloom(trace_id)');
        ALTER TABLE span_links SET (timescaledb.compress_orderby = 'span_start_time DESC',
                                    timescaledb.sparse_index = 'bloom(trace_id)');
    END IF;
END
$$;

-- The refresh policy of a continuous aggregate reaches back `wanted` (and no further than
-- the data kept); replaced only when it differs, so its schedule is otherwise left alone.
CREATE FUNCTION _observatory_set_refresh(view_name text, reach interval, end_offset interval)
RETURNS boolean
LANGUAGE plpgsql
SET search_path = public, pg_temp
AS $$
DECLARE
    current_reach interval;
BEGIN
    SELECT (j.config ->> 'start_offset')::interval INTO current_reach
    FROM timescaledb_information.jobs j
    WHERE j.proc_name = 'policy_refresh_continuous_aggregate' AND j.hypertable_name = view_name;
    IF current_reach = reach THEN
        RETURN false;
    END IF;
    IF current_reach IS NOT NULL THEN
        PERFORM remove_continuous_aggregate_policy(view_name::regclass);
    END IF;
    PERFORM add_continuous_aggregate_policy(view_name::regclass, start_offset => reach, end_offset => end_offset,
                                            schedule_interval => interval '1 minute');
    RETURN true;
END
$$;

-- As in 0001, plus: the aggregates' chunks sized like the spans' (retention drops a chunk
-- only once all of it is past the cutoff, and TimescaleDB's default for an aggregate is ten
-- times the raw interval, which kept rollups of dropped days up to ten days longer), and
-- refresh windows cut to the retention period (a refresh over dropped chunks would rewrite
-- the rollups of those days from no rows).
CREATE OR REPLACE FUNCTION _observatory_maintain_hypertables(retention_days integer, compress_after_days integer,
                                                             chunk_interval interval)
RETURNS text
LANGUAGE plpgsql
SET search_path = public, pg_temp
AS $$
DECLARE
    t text;
    changed integer := 0;
    kept interval := CASE WHEN retention_days > 0 THEN make_interval(days => retention_days) END;
BEGIN
    FOREACH t IN ARRAY ARRAY['spans', 'span_events', 'span_links'] LOOP
        PERFORM set_chunk_time_interval(t::regclass, chunk_interval);
        changed := changed + _observatory_set_policy(t, 'policy_retention', retention_days)::integer;
        changed := changed + _observatory_set_policy(t, 'policy_compression', compress_after_days)::integer;
    END LOOP;
    FOREACH t IN ARRAY ARRAY['span_rollups_1m', 'span_rollups_1h'] LOOP
        PERFORM set_chunk_time_interval(
            format('%I.%I', c.materialization_hypertable_schema, c.materialization_hypertable_name)::regclass, chunk_interval)
        FROM timescaledb_information.continuous_aggregates c WHERE c.view_name = t;
        changed := changed + _observatory_set_policy(t, 'policy_retention', retention_days)::integer;
    END LOOP;
    -- Late spans up to two days old are folded in by the per-minute refresh, the hourly one
    -- follows a day further back (whole hours past it); neither beyond what retention keeps.
    changed := changed + _observatory_set_refresh('span_rollups_1m', least(interval '2 days', kept), interval '1 minute')::integer;
    changed := changed + _observatory_set_refresh('span_rollups_1h', least(interval '3 days', kept), interval '1 hour')::integer;
    RETURN format('hypertables: chunk interval %s, retention %s days, compression after %s days (%s policies changed)',
                  chunk_interval, retention_days, compress_after_days, changed);
END
$$;

REVOKE ALL ON FUNCTION _observatory_set_refresh(text, interval, interval) FROM PUBLIC;
