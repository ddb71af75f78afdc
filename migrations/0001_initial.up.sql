-- Roles, the spans table with its events and links, and the partition helper.
--
-- Roles are cluster-wide in PostgreSQL, so they are created only when absent and kept by
-- the down migration (another database on the cluster may use them). Their passwords are
-- not set here: `observatory migrate` sets them from DATABASE_APP_URL and
-- DATABASE_READONLY_URL when those carry one.

DO $$
BEGIN
    IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'observatory_app') THEN
        CREATE ROLE observatory_app LOGIN;
    END IF;
    IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'observatory_readonly') THEN
        CREATE ROLE observatory_readonly LOGIN;
    END IF;
END
$$;
-- Belt and braces: even a statement that slips past the API's grants cannot write.
ALTER ROLE observatory_readonly SET default_transaction_read_only = on;

-- One row per span. Ids are raw bytes (16-byte trace, 8-byte span ids); times are kept both
-- as timestamptz (microseconds, for partitioning and range filters) and as unix nanoseconds
-- (exact, as OTLP sent them). Partitioned by start_time: daily range partitions on plain
-- PostgreSQL, a hypertable where TimescaleDB is installed.
CREATE TABLE spans (
    trace_id            bytea       NOT NULL,
    span_id             bytea       NOT NULL,
    parent_span_id      bytea,
    trace_state         text,
    flags               integer     NOT NULL DEFAULT 0,
    name                text        NOT NULL,
    kind                smallint    NOT NULL DEFAULT 0,   -- OTLP SpanKind: 0 unspecified .. 5 consumer
    status_code         smallint    NOT NULL DEFAULT 0,   -- OTLP StatusCode: 0 unset, 1 ok, 2 error
    status_message      text,
    service_name        text        NOT NULL,
    scope_name          text,
    scope_version       text,
    start_time          timestamptz NOT NULL,
    end_time            timestamptz NOT NULL,
    start_time_unix_nano bigint     NOT NULL,
    end_time_unix_nano  bigint      NOT NULL,
    duration_ns         bigint      NOT NULL,
    llm_provider        text,
    llm_operation       text,
    llm_request_model   text,
    llm_response_model  text,
    input_tokens        bigint,
    output_tokens       bigint,
    total_tokens        bigint,
    cache_read_tokens   bigint,
    cache_write_tokens  bigint,
    reasoning_tokens    bigint,
    cost_input_usd      numeric(20, 10),
    cost_output_usd     numeric(20, 10),
    cost_total_usd      numeric(20, 10),
    resource_attributes jsonb       NOT NULL DEFAULT '{}',
    attributes          jsonb       NOT NULL DEFAULT '{}',
    dropped_attributes_count integer NOT NULL DEFAULT 0,
    dropped_events_count integer    NOT NULL DEFAULT 0,
    dropped_links_count integer     NOT NULL DEFAULT 0,
    PRIMARY KEY (trace_id, span_id, start_time)
) PARTITION BY RANGE (start_time);

CREATE INDEX spans_service_time ON spans (service_name, start_time DESC);
CREATE INDEX spans_time ON spans (start_time DESC);

CREATE TABLE span_events (
    trace_id        bytea       NOT NULL,
    span_id         bytea       NOT NULL,
    span_start_time timestamptz NOT NULL,
    event_index     integer     NOT NULL,
    time            timestamptz NOT NULL,
    time_unix_nano  bigint      NOT NULL,
    name            text        NOT NULL,
    attributes      jsonb       NOT NULL DEFAULT '{}',
    dropped_attributes_count integer NOT NULL DEFAULT 0,
    PRIMARY KEY (trace_id, span_id, span_start_time, event_index)
) PARTITION BY RANGE (span_start_time);

CREATE TABLE span_links (
    trace_id        bytea       NOT NULL,
    span_id         bytea       NOT NULL,
    span_start_time timestamptz NOT NULL,
    link_index      integer     NOT NULL,
    linked_trace_id bytea       NOT NULL,
    linked_span_id  bytea       NOT NULL,
    trace_state     text,
    flags           integer     NOT NULL DEFAULT 0,
    attributes      jsonb       NOT NULL DEFAULT '{}',
    dropped_attributes_count integer NOT NULL DEFAULT 0,
    PRIMARY KEY (trace_id, span_id, span_start_time, link_index)
) PARTITION BY RANGE (span_start_time);

-- Rows whose day has no partition (far past or future clocks) land here instead of failing
-- the batch.
CREATE TABLE spans_default PARTITION OF spans DEFAULT;
CREATE TABLE span_events_default PARTITION OF span_events DEFAULT;
CREATE TABLE span_links_default PARTITION OF span_links DEFAULT;

-- Creates the daily partitions of spans, span_events and span_links covering
-- [from_day, to_day]. SECURITY DEFINER so the writer's role needs no DDL rights; a day
-- whose rows already sit in the default partition is skipped (they stay readable there).
CREATE FUNCTION observatory_ensure_partitions(from_day date, to_day date)
RETURNS integer
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = public, pg_temp
AS $$
DECLARE
    day date;
    parent text;
    part text;
    created integer := 0;
BEGIN
    IF to_day - from_day > 400 THEN
        RAISE EXCEPTION 'refusing to create % daily partitions at once', to_day - from_day + 1;
    END IF;
    day := from_day;
    WHILE day <= to_day LOOP
        FOREACH parent IN ARRAY ARRAY['spans', 'span_events', 'span_links'] LOOP
            part := format('%s_p%s', parent, to_char(day, 'YYYYMMDD'));
            IF to_regclass(part) IS NULL THEN
                BEGIN
                    EXECUTE format(
                        'CREATE TABLE %I PARTITION OF %I FOR VALUES FROM (%L) TO (%L)',
                        part, parent, day::timestamptz, (day + 1)::timestamptz);
                    created := created + 1;
                EXCEPTION
                    WHEN duplicate_table THEN NULL;        -- a concurrent writer made it
                    WHEN check_violation THEN NULL;        -- rows of that day sit in the default partition
                END;
            END IF;
        END LOOP;
        day := day + 1;
    END LOOP;
    RETURN created;
END
$$;

REVOKE ALL ON FUNCTION observatory_ensure_partitions(date, date) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION observatory_ensure_partitions(date, date) TO observatory_app;

GRANT USAGE ON SCHEMA public TO observatory_app, observatory_readonly;
GRANT SELECT, INSERT ON spans, span_events, span_links TO observatory_app;
GRANT SELECT ON spans, span_events, span_links TO observatory_readonly;
