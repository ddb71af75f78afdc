-- Back to one cost total per span and per rollup row. The components, source and price
-- columns go; legacy rows' input/output costs were already unknown and stay NULL.
DO $$
BEGIN
    IF observatory_uses_timescaledb() THEN
        DROP MATERIALIZED VIEW span_rollups_1h;
        DROP MATERIALIZED VIEW span_rollups_1m;
        CREATE MATERIALIZED VIEW span_rollups_1m
        WITH (timescaledb.continuous, timescaledb.materialized_only = false) AS
        SELECT time_bucket(interval '1 minute', start_time)         AS bucket,
               service_name,
               coalesce(llm_request_model, llm_response_model)      AS model,
               llm_provider                                         AS provider,
               count(*)                                             AS span_count,
               count(*) FILTER (WHERE status_code = 2)              AS error_count,
               coalesce(sum(input_tokens), 0)::bigint               AS input_tokens,
               coalesce(sum(output_tokens), 0)::bigint              AS output_tokens,
               coalesce(sum(cost_total_usd), 0)::numeric            AS cost_usd,
               sum(duration_ns)::bigint                             AS duration_sum_ns,
               max(duration_ns)                                     AS duration_max_ns
        FROM spans
        GROUP BY 1, 2, 3, 4
        WITH NO DATA;
        PERFORM add_continuous_aggregate_policy('span_rollups_1m',
            start_offset => interval '2 days', end_offset => interval '1 minute',
            schedule_interval => interval '1 minute');
        CREATE MATERIALIZED VIEW span_rollups_1h
        WITH (timescaledb.continuous, timescaledb.materialized_only = false) AS
        SELECT time_bucket(interval '1 hour', bucket)                AS bucket,
               service_name,
               model,
               provider,
               sum(span_count)::bigint                               AS span_count,
               sum(error_count)::bigint                              AS error_count,
               sum(input_tokens)::bigint                             AS input_tokens,
               sum(output_tokens)::bigint                            AS output_tokens,
               sum(cost_usd)::numeric                                AS cost_usd,
               sum(duration_sum_ns)::bigint                          AS duration_sum_ns,
               max(duration_max_ns)                                  AS duration_max_ns
        FROM span_rollups_1m
        GROUP BY 1, 2, 3, 4
        WITH NO DATA;
        PERFORM add_continuous_aggregate_policy('span_rollups_1h',
            start_offset => interval '3 days', end_offset => interval '1 hour',
            schedule_interval => interval '1 minute');
        GRANT SELECT ON span_rollups_1m, span_rollups_1h TO observatory_app, observatory_readonly;
    ELSE
        ALTER TABLE span_rollups_1m DROP COLUMN cost_input_usd, DROP COLUMN cost_cache_read_usd,
            DROP COLUMN cost_cache_write_usd, DROP COLUMN cost_output_usd, DROP COLUMN cost_reasoning_usd,
            DROP COLUMN cost_other_usd;
        ALTER TABLE span_rollups_1h DROP COLUMN cost_input_usd, DROP COLUMN cost_cache_read_usd,
            DROP COLUMN cost_cache_write_usd, DROP COLUMN cost_output_usd, DROP COLUMN cost_reasoning_usd,
            DROP COLUMN cost_other_usd;
    END IF;
END
$$;

ALTER TABLE spans
    DROP COLUMN cost_cache_read_usd,
    DROP COLUMN cost_cache_write_usd,
    DROP COLUMN cost_reasoning_usd,
    DROP COLUMN cost_sdk_usd,
    DROP COLUMN cost_source,
    DROP COLUMN cost_price_ref,
    DROP COLUMN cost_price_date;
