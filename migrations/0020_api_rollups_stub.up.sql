-- Stand-in for the storage migrations' per-minute rollups, so the API (which reads them)
-- can be built and tested before those land. Creates span_rollups_1m only when nothing of
-- that name exists yet; where the storage migrations made it (a continuous aggregate on
-- TimescaleDB, a writer-maintained table on plain PostgreSQL) this does nothing.
DO $$
BEGIN
    IF to_regclass('span_rollups_1m') IS NULL THEN
        CREATE TABLE span_rollups_1m (
            bucket          timestamptz NOT NULL,
            service_name    text        NOT NULL,
            model           text,       -- coalesce(llm_request_model, llm_response_model); NULL for non-LLM spans
            provider        text,
            span_count      bigint      NOT NULL,
            error_count     bigint      NOT NULL,
            input_tokens    bigint,
            output_tokens   bigint,
            cost_usd        numeric,
            duration_sum_ns bigint      NOT NULL,
            duration_max_ns bigint      NOT NULL
        );
        CREATE INDEX span_rollups_1m_bucket ON span_rollups_1m (bucket);
        COMMENT ON TABLE span_rollups_1m IS 'api stub (migration 0020); replaced by the storage rollups';
    END IF;
END
$$;
GRANT SELECT ON span_rollups_1m TO observatory_readonly;
