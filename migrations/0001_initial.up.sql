-- Roles, the spans table with its events and links, and the partition helper.
--
-- Roles are cluster-wide in PostgreSQL, so they are created only when absent and kept by
-- the down migration (another database on the cluster may use them). Their passwords are
-- not set here: `observatory migrate` sets them from DATABASE_APP_URL and
-- DATABASE_READONLY_URL when those carry one.

-- Several databases of one cluster may be migrated at once (test runs, tenants): roles and
-- role settings live in shared catalogs, so each change is made only when missing; a
-- migrator that still meets "tuple concurrently updated" runs the migration again
-- (storage/migrations.py).
DO $$
DECLARE
    role text;
BEGIN
    FOREACH role IN ARRAY ARRAY['observatory_app', 'observatory_readonly'] LOOP
        IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = role) THEN
            BEGIN
                EXECUTE format('CREATE ROLE %I LOGIN', role);
            EXCEPTION WHEN duplicate_object OR unique_violation THEN
                NULL;  -- a concurrent migration created it
            END;
        END IF;
    END LOOP;
    -- Belt and braces: even a statement that slips past the API's grants cannot write.
    IF NOT EXISTS (
        SELECT FROM pg_db_role_setting s JOIN pg_roles r ON r.oid = s.setrole
        WHERE r.rolname = 'observatory_readonly' AND s.setdatabase = 0
          AND 'default_transaction_read_only=on' = ANY (s.setconfig)) THEN
        ALTER ROLE observatory_readonly SET default_transaction_read_only = on;
    END IF;
END
$$;

-- TimescaleDB is used when the server preloads it: an extension merely installed on disk
-- cannot be created (CREATE EXTENSION fails unless it is in shared_preload_libraries).
DO $$
BEGIN
    IF NOT EXISTS (SELECT FROM pg_extension WHERE extname = 'timescaledb')
       AND current_setting('shared_preload_libraries') ~ '(^|[\s,])timescaledb($|[\s,])'
       AND EXISTS (SELECT FROM pg_available_extensions WHERE name = 'timescaledb') THEN
        CREATE EXTENSION timescaledb;
    END IF;
END
$$;

-- The one question every other piece of this schema asks: hypertables or partitions?
CREATE FUNCTION observatory_uses_timescaledb() RETURNS boolean
LANGUAGE sql STABLE
AS $$ SELECT EXISTS (SELECT FROM pg_extension WHERE extname = 'timescaledb') $$;

-- One row per span. Ids are raw bytes (16-byte trace, 8-byte span ids); times are kept both
-- as timestamptz (microseconds, for partitioning and range filters) and as unix nanoseconds
-- (exact, as OTLP sent them). Partitioned by start_time: daily range partitions on plain
-- PostgreSQL, a hypertable where TimescaleDB is installed.
CREATE TABLE spans (
    trace_id            bytea       NOT NULL,
    span_id             bytea       NOT NULL,
    parent_span_id      bytea,
    trace_state         text,
    flags               bigint      NOT NULL DEFAULT 0,   -- OTLP fixed32: W3C trace flags and more
    name                text        NOT NULL,
    kind                integer     NOT NULL DEFAULT 0,   -- OTLP SpanKind: 0 unspecified .. 5 consumer
    status_code         integer     NOT NULL DEFAULT 0,   -- OTLP StatusCode: 0 unset, 1 ok, 2 error
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
    -- Widths hold every value OTLP can carry (int32 enums, uint32 counts and flags): a value
    -- that did not fit would be wrapped silently by binary COPY, not refused.
    dropped_attributes_count bigint NOT NULL DEFAULT 0,
    dropped_events_count bigint     NOT NULL DEFAULT 0,
    dropped_links_count bigint      NOT NULL DEFAULT 0,
    PRIMARY KEY (trace_id, span_id, start_time)
) PARTITION BY RANGE (start_time);

CREATE TABLE span_events (
    trace_id        bytea       NOT NULL,
    span_id         bytea       NOT NULL,
    span_start_time timestamptz NOT NULL,
    event_index     integer     NOT NULL,
    time            timestamptz NOT NULL,
    time_unix_nano  bigint      NOT NULL,
    name            text        NOT NULL,
    attributes      jsonb       NOT NULL DEFAULT '{}',
    dropped_attributes_count bigint NOT NULL DEFAULT 0,
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
    flags           bigint      NOT NULL DEFAULT 0,
    attributes      jsonb       NOT NULL DEFAULT '{}',
    dropped_attributes_count bigint NOT NULL DEFAULT 0,
    PRIMARY KEY (trace_id, span_id, span_start_time, link_index)
) PARTITION BY RANGE (span_start_time);


-- The tables above are written once, as native partitioned tables. With TimescaleDB each is
-- rebuilt as a plain table of the same shape and made a hypertable (a hypertable cannot be
-- made from a partitioned table); without it each gets its default partition, where rows
-- whose day has no partition (far-off clocks) land instead of failing the batch.
DO $$
DECLARE
    t text;
BEGIN
    FOREACH t IN ARRAY ARRAY['spans', 'span_events', 'span_links'] LOOP
        IF observatory_uses_timescaledb() THEN
            EXECUTE format('ALTER TABLE %I RENAME TO %I', t, t || '_shape');
            EXECUTE format('CREATE TABLE %I (LIKE %I INCLUDING ALL)', t, t || '_shape');
            EXECUTE format('DROP TABLE %I', t || '_shape');
            -- LIKE named the copied key after the shape's (t_pkey1); give it its usual name.
            EXECUTE format('ALTER TABLE %I RENAME CONSTRAINT %I TO %I', t,
                           (SELECT conname FROM pg_constraint WHERE conrelid = t::regclass AND contype = 'p'),
                           t || '_pkey');
            PERFORM create_hypertable(
                t::regclass, by_range(CASE t WHEN 'spans' THEN 'start_time' ELSE 'span_start_time' END,
                                      interval '1 day'),
                create_default_indexes => false);
        ELSE
            EXECUTE format('CREATE TABLE %I PARTITION OF %I DEFAULT', t || '_default', t);
        END IF;
    END LOOP;
    IF observatory_uses_timescaledb() THEN
        -- Segmenting by service keeps one service's spans together in a compressed batch:
        -- the API's service + time filter then decompresses only that service's batches.
        ALTER TABLE spans SET (timescaledb.compress, timescaledb.compress_segmentby = 'service_name',
                               timescaledb.compress_orderby = 'start_time DESC, trace_id');
        ALTER TABLE span_events SET (timescaledb.compress, timescaledb.compress_orderby = 'span_start_time DESC, trace_id');
        ALTER TABLE span_links SET (timescaledb.compress, timescaledb.compress_orderby = 'span_start_time DESC, trace_id');
    END IF;
END
$$;

-- Indexes for the API's queries (docs/STORAGE.md has the measurements behind each). Trace
-- lookup is served by the primary keys, whose leading column is trace_id.
CREATE INDEX spans_time ON spans (start_time DESC);
CREATE INDEX spans_service_time ON spans (service_name, start_time DESC);
CREATE INDEX spans_model_time ON spans ((coalesce(llm_request_model, llm_response_model)), start_time DESC)
    WHERE coalesce(llm_request_model, llm_response_model) IS NOT NULL;
-- Errors are the status anyone filters on, and a small share of spans: a partial index
-- answers "errors in this window" without indexing every OK span.
CREATE INDEX spans_error_time ON spans (start_time DESC) WHERE status_code = 2;

-- Rollups by service, model and provider in two tiers of the same columns: per minute
-- (`span_rollups_1m`) and per hour (`span_rollups_1h`, what the API reads for whole hours:
-- a 7-day answer sums ~60 times fewer rows). With TimescaleDB real-time continuous
-- aggregates, the hourly one built on the per-minute one (a hierarchical aggregate); on plain
-- PostgreSQL tables the writer updates in the transaction that inserts the spans, counting
-- only rows really inserted.
DO $$
BEGIN
    IF observatory_uses_timescaledb() THEN
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
        -- Late spans up to two days old are folded in by the refresh; newer ones are read
        -- live (materialized_only = false), so the API never waits for a refresh.
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
        -- Its refresh folds in what the per-minute refresh changed: that reaches two days
        -- back, so this one reaches three (whole hours past it). Every minute, like that one,
        -- so an hour's total here agrees with its minutes there within a minute or two;
        -- the open hour is read live from span_rollups_1m.
        PERFORM add_continuous_aggregate_policy('span_rollups_1h',
            start_offset => interval '3 days', end_offset => interval '1 hour',
            schedule_interval => interval '1 minute');
    ELSE
        CREATE TABLE span_rollups_1m (
            bucket          timestamptz NOT NULL,
            service_name    text        NOT NULL,
            model           text,
            provider        text,
            span_count      bigint      NOT NULL,
            error_count     bigint      NOT NULL,
            input_tokens    bigint      NOT NULL,
            output_tokens   bigint      NOT NULL,
            cost_usd        numeric     NOT NULL,
            duration_sum_ns bigint      NOT NULL,
            duration_max_ns bigint      NOT NULL,
            CONSTRAINT span_rollups_1m_key UNIQUE NULLS NOT DISTINCT (bucket, service_name, model, provider)
        );
        CREATE INDEX span_rollups_1m_bucket ON span_rollups_1m (bucket DESC);
        CREATE TABLE span_rollups_1h (
            LIKE span_rollups_1m,
            CONSTRAINT span_rollups_1h_key UNIQUE NULLS NOT DISTINCT (bucket, service_name, model, provider)
        );
        CREATE INDEX span_rollups_1h_bucket ON span_rollups_1h (bucket DESC);
        GRANT INSERT, UPDATE ON span_rollups_1m, span_rollups_1h TO observatory_app;
    END IF;
END
$$;

-- Creates the daily partitions of spans, span_events and span_links covering
-- [from_day, to_day] (UTC days). SECURITY DEFINER so the writer's role needs no DDL rights;
-- a day whose rows already sit in the default partition is skipped (they stay readable there).
CREATE FUNCTION observatory_ensure_partitions(from_day date, to_day date)
RETURNS integer
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = public, pg_temp
SET TimeZone = 'UTC'
AS $$
DECLARE
    day date;
    parent text;
    part text;
    created integer := 0;
BEGIN
    IF observatory_uses_timescaledb() THEN
        RETURN 0;  -- hypertables make their own chunks
    END IF;
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

-- Drops what is older than retention_days (0 keeps everything) and creates the partitions of
-- the next days_ahead days; on TimescaleDB it sets the chunk interval and the retention and
-- compression policies instead (compress_after_days 0 switches compression off). Called by
-- every writer at start and then hourly, and by operators; concurrent calls run one at a time
-- (a second caller returns at once). Returns a one-line summary.
CREATE FUNCTION observatory_maintain(retention_days integer, compress_after_days integer,
                                     chunk_interval interval, days_ahead integer)
RETURNS text
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = public, pg_temp
SET TimeZone = 'UTC'
AS $$
BEGIN
    IF retention_days < 0 OR compress_after_days < 0 OR days_ahead < 0 OR chunk_interval <= interval '0' THEN
        RAISE EXCEPTION 'observatory_maintain: arguments must not be negative';
    END IF;
    IF NOT pg_try_advisory_xact_lock(7244105018264114) THEN
        RETURN 'skipped: another maintenance run is in progress';
    END IF;
    IF observatory_uses_timescaledb() THEN
        RETURN _observatory_maintain_hypertables(retention_days, compress_after_days, chunk_interval);
    END IF;
    RETURN _observatory_maintain_partitions(retention_days, days_ahead);
END
$$;

CREATE FUNCTION _observatory_maintain_partitions(retention_days integer, days_ahead integer)
RETURNS text
LANGUAGE plpgsql
SET search_path = public, pg_temp
SET TimeZone = 'UTC'
SET lock_timeout = '5s'  -- dropping a partition locks its parent: never queue long behind a query
AS $$
DECLARE
    cutoff date := current_date - retention_days;
    created integer;
    dropped integer := 0;
    part record;
BEGIN
    created := observatory_ensure_partitions(current_date - 1, current_date + days_ahead);
    IF retention_days = 0 THEN
        RETURN format('created %s partitions; retention off', created);
    END IF;
    FOR part IN
        SELECT c.relname
        FROM pg_inherits i
        JOIN pg_class c ON c.oid = i.inhrelid
        JOIN pg_class p ON p.oid = i.inhparent
        WHERE p.relname IN ('spans', 'span_events', 'span_links')
          AND c.relname ~ '_p\d{8}$'
          AND to_date(right(c.relname, 8), 'YYYYMMDD') < cutoff
    LOOP
        BEGIN
            EXECUTE format('DROP TABLE %I', part.relname);
            dropped := dropped + 1;
        EXCEPTION WHEN lock_not_available THEN
            RAISE WARNING 'partition % not dropped now (locked); the next run retries', part.relname;
        END;
    END LOOP;
    DELETE FROM spans_default WHERE start_time < cutoff;
    DELETE FROM span_events_default WHERE span_start_time < cutoff;
    DELETE FROM span_links_default WHERE span_start_time < cutoff;
    DELETE FROM span_rollups_1m WHERE bucket < cutoff;
    DELETE FROM span_rollups_1h WHERE bucket < cutoff;  -- cutoff is midnight: whole hours go
    RETURN format('created %s partitions, dropped %s older than %s', created, dropped, cutoff);
END
$$;

-- The job of `policy` on `relation` (a hypertable or continuous aggregate) and its age setting.
-- plpgsql, not sql: its body names TimescaleDB's views, which exist only with the extension.
CREATE FUNCTION _observatory_policy(relation text, policy text, OUT job_id integer, OUT age interval)
LANGUAGE plpgsql STABLE
SET search_path = public, pg_temp
AS $$
BEGIN
    SELECT j.job_id, (j.config ->> CASE policy WHEN 'policy_retention' THEN 'drop_after' ELSE 'compress_after' END)::interval
    INTO job_id, age
    FROM timescaledb_information.jobs j
    WHERE j.proc_name = policy
      AND j.hypertable_name IN (
          relation,
          (SELECT materialization_hypertable_name FROM timescaledb_information.continuous_aggregates
           WHERE view_name = relation));
END
$$;

CREATE FUNCTION _observatory_set_policy(relation text, policy text, days integer)
RETURNS boolean
LANGUAGE plpgsql
SET search_path = public, pg_temp
AS $$
DECLARE
    current record := _observatory_policy(relation, policy);
    wanted interval := CASE WHEN days > 0 THEN make_interval(days => days) END;
BEGIN
    IF (current.job_id IS NULL AND wanted IS NULL) OR current.age = wanted THEN
        RETURN false;  -- already as asked: keep the job (and its schedule) as it is
    END IF;
    IF current.job_id IS NOT NULL THEN
        PERFORM delete_job(current.job_id);
    END IF;
    IF wanted IS NOT NULL AND policy = 'policy_retention' THEN
        PERFORM add_retention_policy(relation::regclass, wanted);
    ELSIF wanted IS NOT NULL THEN
        PERFORM add_compression_policy(relation::regclass, wanted);
    END IF;
    RETURN true;
END
$$;

CREATE FUNCTION _observatory_maintain_hypertables(retention_days integer, compress_after_days integer,
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

REVOKE ALL ON FUNCTION observatory_ensure_partitions(date, date) FROM PUBLIC;
REVOKE ALL ON FUNCTION observatory_maintain(integer, integer, interval, integer) FROM PUBLIC;
REVOKE ALL ON FUNCTION _observatory_maintain_partitions(integer, integer) FROM PUBLIC;
REVOKE ALL ON FUNCTION _observatory_maintain_hypertables(integer, integer, interval) FROM PUBLIC;
REVOKE ALL ON FUNCTION _observatory_set_policy(text, text, integer) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION observatory_ensure_partitions(date, date) TO observatory_app;
GRANT EXECUTE ON FUNCTION observatory_maintain(integer, integer, interval, integer) TO observatory_app;

GRANT USAGE ON SCHEMA public TO observatory_app, observatory_readonly;
GRANT SELECT, INSERT ON spans, span_events, span_links TO observatory_app;
GRANT SELECT ON spans, span_events, span_links, span_rollups_1m, span_rollups_1h TO observatory_app, observatory_readonly;
