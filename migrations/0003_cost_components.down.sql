-- Back to one cost total per span and per rollup row. The components, source and price
-- columns go; legacy rows' input/output costs were already unknown and stay NULL.
DO $$
BEGIN
    IF observatory_uses_timescaledb() THEN
        -- 0002's aggregates (saturating sums), history refreshed once by its job.
        PERFORM delete_job(job_id) FROM timescaledb_information.jobs WHERE proc_name = 'observatory_refresh_rollups';
        PERFORM _observatory_rollup_aggregates(true);
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

DROP FUNCTION _observatory_cost_rollup_aggregates();

ALTER TABLE spans
    DROP COLUMN cost_cache_read_usd,
    DROP COLUMN cost_cache_write_usd,
    DROP COLUMN cost_reasoning_usd,
    DROP COLUMN cost_sdk_usd,
    DROP COLUMN cost_source,
    DROP COLUMN cost_price_ref,
    DROP COLUMN cost_price_date;
