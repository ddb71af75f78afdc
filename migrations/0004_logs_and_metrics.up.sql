-- OTLP logs and metric data points beside the spans, laid out as the spans are: hypertables
-- with TimescaleDB, daily range partitions (and a default partition) without it, the same
-- retention. Both are idempotent on redelivery: a log record is keyed by a hash of its
-- resource, scope and content, a data point by its series (a hash of metric name, kind,
-- unit, resource, scope and attributes) and its time, and the writer inserts with
-- ON CONFLICT DO NOTHING where a batch meets stored rows.

-- One row per log record. Times as timestamptz (partitioning, ranges) and exact unix
-- nanoseconds; ids as raw bytes, NULL when the record names no trace or span.
CREATE TABLE logs (
    time                    timestamptz NOT NULL,
    time_unix_nano          bigint      NOT NULL,
    observed_time           timestamptz NOT NULL,
    observed_time_unix_nano bigint      NOT NULL,
    trace_id                bytea,
    span_id                 bytea,
    flags                   bigint      NOT NULL DEFAULT 0,   -- OTLP fixed32: W3C trace flags
    severity_number         integer     NOT NULL DEFAULT 0,   -- OTLP SeverityNumber: 0 unspecified, 1-4 trace .. 21-24 fatal
    severity_text           text,
    service_name            text        NOT NULL,
    event_name              text,                             -- LogRecord.event_name, or the event.name attribute of older SDKs
    body                    jsonb,                            -- the AnyValue as JSON (a string, number, array or object), NULL when absent
    attributes              jsonb       NOT NULL DEFAULT '{}',
    resource_attributes     jsonb       NOT NULL DEFAULT '{}',
    scope_name              text,
    scope_version           text,
    scope_attributes        jsonb       NOT NULL DEFAULT '{}',
    dropped_attributes_count bigint     NOT NULL DEFAULT 0,
    record_id               bytea       NOT NULL,             -- 16-byte hash of resource, scope and record: the redelivery key
    PRIMARY KEY (record_id, time)
) PARTITION BY RANGE (time);

-- One row per data point, whatever the metric's kind; columns a kind does not use are NULL.
CREATE TABLE metric_points (
    time                    timestamptz NOT NULL,
    time_unix_nano          bigint      NOT NULL,
    start_time              timestamptz,
    start_time_unix_nano    bigint,
    metric_name             text        NOT NULL,
    description             text,
    unit                    text,
    metric_type             text        NOT NULL CHECK (metric_type IN ('gauge', 'sum', 'histogram', 'exponential_histogram', 'summary')),
    temporality             integer,                          -- AggregationTemporality: 1 delta, 2 cumulative (sum and histograms)
    is_monotonic            boolean,                          -- sums only
    service_name            text        NOT NULL,
    attributes              jsonb       NOT NULL DEFAULT '{}',
    resource_attributes     jsonb       NOT NULL DEFAULT '{}',
    scope_name              text,
    scope_version           text,
    flags                   bigint      NOT NULL DEFAULT 0,   -- DataPointFlags (1: no recorded value)
    value                   double precision,                 -- gauge and sum
    int_value               bigint,                           -- the exact value when the SDK sent an integer
    count                   bigint,                           -- histograms and summary (uint64 kept below 2^63)
    sum                     double precision,
    min                     double precision,
    max                     double precision,
    explicit_bounds         double precision[],               -- histogram
    bucket_counts           bigint[],
    scale                   integer,                          -- exponential histogram
    zero_count              bigint,
    zero_threshold          double precision,
    positive_offset         integer,
    positive_bucket_counts  bigint[],
    negative_offset         integer,
    negative_bucket_counts  bigint[],
    quantiles               double precision[],               -- summary: quantile i has value quantile_values[i]
    quantile_values         double precision[],
    exemplars               jsonb,                            -- [{time_unix_nano, value, trace_id, span_id (hex), attributes}]
    exemplar_trace_ids      bytea[],                          -- the traces the exemplars point at
    series_id               bytea       NOT NULL,             -- 16-byte hash of name, kind, unit, resource, scope, attributes
    PRIMARY KEY (series_id, time, time_unix_nano)
) PARTITION BY RANGE (time);

-- Rebuilt as hypertables with TimescaleDB (as 0001 does for the spans), else given their
-- default partitions.
DO $$
DECLARE
    t text;
BEGIN
    FOREACH t IN ARRAY ARRAY['logs', 'metric_points'] LOOP
        IF observatory_uses_timescaledb() THEN
            EXECUTE format('ALTER TABLE %I RENAME TO %I', t, t || '_shape');
            EXECUTE format('CREATE TABLE %I (LIKE %I INCLUDING ALL)', t, t || '_shape');
            EXECUTE format('DROP TABLE %I', t || '_shape');
            EXECUTE format('ALTER TABLE %I RENAME CONSTRAINT %I TO %I', t,
                           (SELECT conname FROM pg_constraint WHERE conrelid = t::regclass AND contype = 'p'),
                           t || '_pkey');
            PERFORM create_hypertable(t::regclass, by_range('time', interval '1 day'), create_default_indexes => false);
        ELSE
            EXECUTE format('CREATE TABLE %I PARTITION OF %I DEFAULT', t || '_default', t);
        END IF;
    END LOOP;
    IF observatory_uses_timescaledb() THEN
        ALTER TABLE logs SET (timescaledb.compress, timescaledb.compress_segmentby = 'service_name',
                              timescaledb.compress_orderby = 'time DESC');
        ALTER TABLE metric_points SET (timescaledb.compress, timescaledb.compress_segmentby = 'metric_name',
                                       timescaledb.compress_orderby = 'time DESC');
    END IF;
END
$$;

-- The API's questions: a trace's (and a span's) records, log search by service / event /
-- time, a metric's series over a window.
CREATE INDEX logs_time ON logs (time DESC);
CREATE INDEX logs_service_time ON logs (service_name, time DESC);
CREATE INDEX logs_trace ON logs (trace_id, span_id) WHERE trace_id IS NOT NULL;
CREATE INDEX logs_event_time ON logs (event_name, time DESC) WHERE event_name IS NOT NULL;
CREATE INDEX metric_points_name_time ON metric_points (metric_name, time DESC);

-- Daily partitions of logs and metric_points covering [from_day, to_day] (UTC), as
-- observatory_ensure_partitions does for the span tables; SECURITY DEFINER so the writer
-- needs no DDL rights.
CREATE FUNCTION observatory_ensure_signal_partitions(from_day date, to_day date)
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
        RETURN 0;
    END IF;
    IF to_day - from_day > 400 THEN
        RAISE EXCEPTION 'refusing to create % daily partitions at once', to_day - from_day + 1;
    END IF;
    day := from_day;
    WHILE day <= to_day LOOP
        FOREACH parent IN ARRAY ARRAY['logs', 'metric_points'] LOOP
            part := format('%s_p%s', parent, to_char(day, 'YYYYMMDD'));
            IF to_regclass(part) IS NULL THEN
                BEGIN
                    EXECUTE format('CREATE TABLE %I PARTITION OF %I FOR VALUES FROM (%L) TO (%L)',
                                   part, parent, day::timestamptz, (day + 1)::timestamptz);
                    created := created + 1;
                EXCEPTION
                    WHEN duplicate_table THEN NULL;
                    WHEN check_violation THEN NULL;
                END;
            END IF;
        END LOOP;
        day := day + 1;
    END LOOP;
    RETURN created;
END
$$;

-- Retention and layout of logs and metric_points, with the arguments of observatory_maintain
-- (which the writer and `observatory maintain` call just before this one).
CREATE FUNCTION observatory_maintain_signals(retention_days integer, compress_after_days integer,
                                             chunk_interval interval, days_ahead integer)
RETURNS text
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = public, pg_temp
SET TimeZone = 'UTC'
SET lock_timeout = '5s'
AS $$
DECLARE
    t text;
    changed integer := 0;
    created integer;
    dropped integer := 0;
    cutoff date := current_date - retention_days;
    part record;
BEGIN
    IF retention_days < 0 OR compress_after_days < 0 OR days_ahead < 0 OR chunk_interval <= interval '0' THEN
        RAISE EXCEPTION 'observatory_maintain_signals: arguments must not be negative';
    END IF;
    IF NOT pg_try_advisory_xact_lock(7244105018264116) THEN
        RETURN 'skipped: another maintenance run is in progress';
    END IF;
    IF observatory_uses_timescaledb() THEN
        FOREACH t IN ARRAY ARRAY['logs', 'metric_points'] LOOP
            PERFORM set_chunk_time_interval(t::regclass, chunk_interval);
            changed := changed + _observatory_set_policy(t, 'policy_retention', retention_days)::integer;
            changed := changed + _observatory_set_policy(t, 'policy_compression', compress_after_days)::integer;
        END LOOP;
        RETURN format('logs and metric_points: %s policies changed', changed);
    END IF;
    created := observatory_ensure_signal_partitions(current_date - 1, current_date + days_ahead);
    IF retention_days = 0 THEN
        RETURN format('logs and metric_points: created %s partitions; retention off', created);
    END IF;
    FOR part IN
        SELECT c.relname
        FROM pg_inherits i
        JOIN pg_class c ON c.oid = i.inhrelid
        JOIN pg_class p ON p.oid = i.inhparent
        WHERE p.relname IN ('logs', 'metric_points')
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
    DELETE FROM logs_default WHERE time < cutoff;
    DELETE FROM metric_points_default WHERE time < cutoff;
    RETURN format('logs and metric_points: created %s partitions, dropped %s older than %s', created, dropped, cutoff);
END
$$;

REVOKE ALL ON FUNCTION observatory_ensure_signal_partitions(date, date) FROM PUBLIC;
REVOKE ALL ON FUNCTION observatory_maintain_signals(integer, integer, interval, integer) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION observatory_ensure_signal_partitions(date, date) TO observatory_app;
GRANT EXECUTE ON FUNCTION observatory_maintain_signals(integer, integer, interval, integer) TO observatory_app;
GRANT SELECT, INSERT ON logs, metric_points TO observatory_app;
GRANT SELECT ON logs, metric_points TO observatory_readonly;
