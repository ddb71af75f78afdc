-- Back to 0001's aggregates (bigint casts that fail on overflow), refreshed once in the
-- background the same way.
DO $$
BEGIN
    IF observatory_uses_timescaledb() THEN
        PERFORM delete_job(job_id) FROM timescaledb_information.jobs WHERE proc_name = 'observatory_refresh_rollups';
        PERFORM _observatory_rollup_aggregates(false);
        PERFORM delete_job(job_id) FROM timescaledb_information.jobs WHERE proc_name = 'observatory_refresh_rollups';
    END IF;
END
$$;
DROP PROCEDURE IF EXISTS observatory_refresh_rollups(integer, jsonb);
DROP FUNCTION IF EXISTS _observatory_rollup_aggregates(boolean);
