-- Auditable cost: each kind of token's cost in its own column, where the figure came from,
-- and which price was used; rollups sum the components.
--
-- Meaning from this migration on (docs/ARCHITECTURE.md, "LLM fields"):
--   input_tokens include cache reads and writes, output_tokens include reasoning tokens;
--   cost_input_usd        input tokens that were neither cache reads nor cache writes
--   cost_cache_read_usd   cache reads          cost_cache_write_usd  cache writes
--   cost_output_usd       output tokens that were not reasoning      cost_reasoning_usd  reasoning
--   cost_total_usd        the figure used: the sum of the five, or the SDK's when it won
--   cost_sdk_usd          what the SDK sent (kept whichever won)
--   cost_source           computed (genai-prices), override (PRICING_FILE), sdk, legacy
--   cost_price_ref        which price: "genai-prices 0.2.3 openai/gpt-4o-mini" or the PRICING_FILE entry
--   cost_price_date       that price's effective-from day (NULL: the library's undated price)
-- Rows stored before this migration keep their total as cost_source 'legacy' with unknown
-- components (their input cost had cache reads folded in): `observatory reprice` recomputes them.
ALTER TABLE spans
    ADD COLUMN cost_cache_read_usd  numeric(20, 10),
    ADD COLUMN cost_cache_write_usd numeric(20, 10),
    ADD COLUMN cost_reasoning_usd   numeric(20, 10),
    ADD COLUMN cost_sdk_usd         numeric(20, 10),
    ADD COLUMN cost_source          text,
    ADD COLUMN cost_price_ref       text,
    ADD COLUMN cost_price_date      date;

UPDATE spans SET cost_source = 'legacy', cost_input_usd = NULL, cost_output_usd = NULL
WHERE cost_total_usd IS NOT NULL;

-- Rollups: the components of computed and override costs, and beside them the total of the
-- spans whose components are not known or not what was charged (SDK figures, legacy rows),
-- so that cost_usd = the five components + cost_other_usd in every row.
DO $$
BEGIN
    IF observatory_uses_timescaledb() THEN
        -- A continuous aggregate's query cannot be altered: both tiers are made again. They
        -- are real-time aggregates, so they answer from the spans at once; the refresh
        -- policies (re-added below) materialise the last days, and `observatory reprice`
        -- (or CALL refresh_continuous_aggregate) older ones.
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
               max(duration_ns)                                     AS duration_max_ns,
               coalesce(sum(CASE WHEN cost_source IN ('computed', 'override') THEN cost_input_usd END), 0)::numeric       AS cost_input_usd,
               coalesce(sum(CASE WHEN cost_source IN ('computed', 'override') THEN cost_cache_read_usd END), 0)::numeric  AS cost_cache_read_usd,
               coalesce(sum(CASE WHEN cost_source IN ('computed', 'override') THEN cost_cache_write_usd END), 0)::numeric AS cost_cache_write_usd,
               coalesce(sum(CASE WHEN cost_source IN ('computed', 'override') THEN cost_output_usd END), 0)::numeric      AS cost_output_usd,
               coalesce(sum(CASE WHEN cost_source IN ('computed', 'override') THEN cost_reasoning_usd END), 0)::numeric   AS cost_reasoning_usd,
               coalesce(sum(CASE WHEN cost_source IN ('computed', 'override') THEN 0 ELSE cost_total_usd END), 0)::numeric AS cost_other_usd
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
               max(duration_max_ns)                                  AS duration_max_ns,
               sum(cost_input_usd)::numeric                          AS cost_input_usd,
               sum(cost_cache_read_usd)::numeric                     AS cost_cache_read_usd,
               sum(cost_cache_write_usd)::numeric                    AS cost_cache_write_usd,
               sum(cost_output_usd)::numeric                         AS cost_output_usd,
               sum(cost_reasoning_usd)::numeric                      AS cost_reasoning_usd,
               sum(cost_other_usd)::numeric                          AS cost_other_usd
        FROM span_rollups_1m
        GROUP BY 1, 2, 3, 4
        WITH NO DATA;
        PERFORM add_continuous_aggregate_policy('span_rollups_1h',
            start_offset => interval '3 days', end_offset => interval '1 hour',
            schedule_interval => interval '1 minute');
        GRANT SELECT ON span_rollups_1m, span_rollups_1h TO observatory_app, observatory_readonly;
    ELSE
        ALTER TABLE span_rollups_1m
            ADD COLUMN cost_input_usd       numeric NOT NULL DEFAULT 0,
            ADD COLUMN cost_cache_read_usd  numeric NOT NULL DEFAULT 0,
            ADD COLUMN cost_cache_write_usd numeric NOT NULL DEFAULT 0,
            ADD COLUMN cost_output_usd      numeric NOT NULL DEFAULT 0,
            ADD COLUMN cost_reasoning_usd   numeric NOT NULL DEFAULT 0,
            ADD COLUMN cost_other_usd       numeric NOT NULL DEFAULT 0;
        ALTER TABLE span_rollups_1h
            ADD COLUMN cost_input_usd       numeric NOT NULL DEFAULT 0,
            ADD COLUMN cost_cache_read_usd  numeric NOT NULL DEFAULT 0,
            ADD COLUMN cost_cache_write_usd numeric NOT NULL DEFAULT 0,
            ADD COLUMN cost_output_usd      numeric NOT NULL DEFAULT 0,
            ADD COLUMN cost_reasoning_usd   numeric NOT NULL DEFAULT 0,
            ADD COLUMN cost_other_usd       numeric NOT NULL DEFAULT 0;
        -- What was summed before is all legacy: its parts are unknown.
        UPDATE span_rollups_1m SET cost_other_usd = cost_usd WHERE cost_usd <> 0;
        UPDATE span_rollups_1h SET cost_other_usd = cost_usd WHERE cost_usd <> 0;
    END IF;
END
$$;
