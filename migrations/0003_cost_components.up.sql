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
--
-- With TimescaleDB a continuous aggregate's query cannot be altered: both tiers are made
-- again, with 0002's sums held at the bigint maximum. Dropping an aggregate drops what it had
-- materialized; they are real-time aggregates, so they answer from the spans at once, and
-- 0002's one-off job (observatory_refresh_rollups) materializes the whole history again in
-- the background, then unschedules itself, so usage over old data stays right after upgrade.
CREATE FUNCTION _observatory_cost_rollup_aggregates() RETURNS void
LANGUAGE plpgsql
SET search_path = public, pg_temp
AS $$
DECLARE
    -- sum(x) held at 2^63-1, as in 0002
    s text := 'least(%s, 9223372036854775807)::bigint';
    -- the components of spans priced by the collector, else the figure in cost_other_usd
    c text := 'coalesce(sum(CASE WHEN cost_source IN (''computed'', ''override'') THEN %s END), 0)::numeric';
BEGIN
    DROP MATERIALIZED VIEW IF EXISTS span_rollups_1h;
    DROP MATERIALIZED VIEW IF EXISTS span_rollups_1m;
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
               max(duration_ns)                                     AS duration_max_ns,
               %s                                                   AS cost_input_usd,
               %s                                                   AS cost_cache_read_usd,
               %s                                                   AS cost_cache_write_usd,
               %s                                                   AS cost_output_usd,
               %s                                                   AS cost_reasoning_usd,
               %s                                                   AS cost_other_usd
        FROM spans
        GROUP BY 1, 2, 3, 4
        WITH NO DATA$q$,
        format(s, 'coalesce(sum(input_tokens), 0)'), format(s, 'coalesce(sum(output_tokens), 0)'),
        format(s, 'sum(duration_ns)'),
        format(c, 'cost_input_usd'), format(c, 'cost_cache_read_usd'), format(c, 'cost_cache_write_usd'),
        format(c, 'cost_output_usd'), format(c, 'cost_reasoning_usd'),
        'coalesce(sum(CASE WHEN cost_source IN (''computed'', ''override'') THEN 0 ELSE cost_total_usd END), 0)::numeric');
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
               max(duration_max_ns)                                  AS duration_max_ns,
               sum(cost_input_usd)::numeric                          AS cost_input_usd,
               sum(cost_cache_read_usd)::numeric                     AS cost_cache_read_usd,
               sum(cost_cache_write_usd)::numeric                    AS cost_cache_write_usd,
               sum(cost_output_usd)::numeric                         AS cost_output_usd,
               sum(cost_reasoning_usd)::numeric                      AS cost_reasoning_usd,
               sum(cost_other_usd)::numeric                          AS cost_other_usd
        FROM span_rollups_1m
        GROUP BY 1, 2, 3, 4
        WITH NO DATA$q$,
        format(s, 'sum(span_count)'), format(s, 'sum(error_count)'), format(s, 'sum(input_tokens)'),
        format(s, 'sum(output_tokens)'), format(s, 'sum(duration_sum_ns)'));
    PERFORM add_continuous_aggregate_policy('span_rollups_1h',
        start_offset => interval '3 days', end_offset => interval '1 hour',
        schedule_interval => interval '1 minute');
    GRANT SELECT ON span_rollups_1m, span_rollups_1h TO observatory_app, observatory_readonly;
    -- History: refreshed once in the background by 0002's job (a refresh cannot run in this
    -- transaction). One job at a time: an earlier one not yet run would refresh the same.
    PERFORM delete_job(job_id) FROM timescaledb_information.jobs WHERE proc_name = 'observatory_refresh_rollups';
    PERFORM add_job('observatory_refresh_rollups', interval '1 day', initial_start => now());
END
$$;
REVOKE ALL ON FUNCTION _observatory_cost_rollup_aggregates() FROM PUBLIC;

DO $$
BEGIN
    IF observatory_uses_timescaledb() THEN
        PERFORM _observatory_cost_rollup_aggregates();
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
