-- Rollup sums that cannot overflow. With TimescaleDB the continuous aggregates summed into
-- bigint casts: a few spans of very long duration (or huge token counts) in one minute of
-- one service and model made every refresh of that range, and every read of it, fail with
-- "bigint out of range". They are made again with each sum held at the bigint maximum,
-- as the writer's upserts on plain PostgreSQL now hold them (storage/rollups.py); plain
-- PostgreSQL needs no schema change.
--
-- Dropping an aggregate drops what it had materialized. Until the new ones are refreshed,
-- real-time aggregation answers from the spans; a one-off job (observatory_refresh_rollups)
-- materializes the whole history once, in the background, and then unschedules itself.

CREATE FUNCTION _observatory_rollup_aggregates(saturating boolean) RETURNS void
LANGUAGE plpgsql
SET search_path = public, pg_temp
AS $$
DECLARE
    cap text := CASE WHEN saturating THEN '9223372036854775807' ELSE NULL END;
    -- sum(x)::bigint, or least(sum(x), 2^63-1)::bigint
    s text := CASE WHEN saturating THEN 'least(%s, ' || cap || ')::bigint' ELSE '%s::bigint' END;
BEGIN
    IF to_regclass('span_rollups_1h') IS NOT NULL THEN
        DROP MATERIALIZED VIEW span_rollups_1h;
    END IF;
    IF to_regclass('span_rollups_1m') IS NOT NULL THEN
        DROP MATERIALIZED VIEW span_rollups_1m;
    END IF;
    EXECUTE format($q$
        CREATE MATERIALIZED VIEW span_rollups_1m
        WITH (timescaledb.continuous, timescaledb.materialized_only = false) AS
        SELECT time_bucket(interval '1 minute', start_time)         AS bucket,
               service_name,
               coalesce(llm_request_model, llm_response_model)      AS model,
               llm_provider                                         AS provider,
               count(*)                                             AS span_count,
               count(*) FILTER (WHERE status_code = 2)              AS error_count,
               %s                                                   AS input_tokens,
               %s                                                   AS output_tokens,
               coalesce(sum(cost_total_usd), 0)::numeric            AS cost_usd,
               %s                                                   AS duration_sum_ns,
               max(duration_ns)                                     AS duration_max_ns
        FROM spans
        GROUP BY 1, 2, 3, 4
        WITH NO DATA$q$,
        format(s, 'coalesce(sum(input_tokens), 0)'), format(s, 'coalesce(sum(output_tokens), 0)'),
        format(s, 'sum(duration_ns)'));
    PERFORM add_continuous_aggregate_policy('span_rollups_1m',
        start_offset => interval '2 days', end_offset => interval '1 minute',
        schedule_interval => interval '1 minute');
    EXECUTE format($q$
        CREATE MATERIALIZED VIEW span_rollups_1h
        WITH (timescaledb.continuous, timescaledb.materialized_only = false) AS
        SELECT time_bucket(interval '1 hour', bucket)                AS bucket,
               service_name,
               model,
               provider,
               %s                                                    AS span_count,
               %s                                                    AS error_count,
               %s                                                    AS input_tokens,
               %s                                                    AS output_tokens,
               sum(cost_usd)::numeric                                AS cost_usd,
               %s                                                    AS duration_sum_ns,
               max(duration_max_ns)                                  AS duration_max_ns
        FROM span_rollups_1m
        GROUP BY 1, 2, 3, 4
        WITH NO DATA$q$,
        format(s, 'sum(span_count)'), format(s, 'sum(error_count)'), format(s, 'sum(input_tokens)'),
        format(s, 'sum(output_tokens)'), format(s, 'sum(duration_sum_ns)'));
    PERFORM add_continuous_aggregate_policy('span_rollups_1h',
        start_offset => interval '3 days', end_offset => interval '1 hour',
        schedule_interval => interval '1 minute');
    GRANT SELECT ON span_rollups_1m, span_rollups_1h TO observatory_app, observatory_readonly;
    -- History: refreshed once in the background (a refresh cannot run in this transaction).
    PERFORM add_job('observatory_refresh_rollups', interval '1 day', initial_start => now());
END
$$;

-- A job: refresh both tiers over all time (the per-minute one first: the hourly one is built
-- on it), then stop being scheduled.
-- (No SET search_path here: a procedure with one cannot COMMIT.)
CREATE PROCEDURE observatory_refresh_rollups(job_id integer, config jsonb)
LANGUAGE plpgsql
AS $$
BEGIN
    CALL public.refresh_continuous_aggregate('public.span_rollups_1m', NULL, NULL);
    COMMIT;
    CALL public.refresh_continuous_aggregate('public.span_rollups_1h', NULL, NULL);
    COMMIT;
    PERFORM public.alter_job(job_id, scheduled => false);
END
$$;

DO $$
BEGIN
    IF observatory_uses_timescaledb() THEN
        PERFORM _observatory_rollup_aggregates(true);
    END IF;
END
$$;
