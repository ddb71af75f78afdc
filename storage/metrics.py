"""The storage writer's Prometheus metrics (docs/STORAGE.md explains each)."""

from prometheus_client import Counter, Gauge, Histogram

SPANS_WRITTEN = Counter("observatory_storage_spans_written_total", "Span rows inserted (duplicates excluded)")
SPANS_DUPLICATE = Counter("observatory_storage_spans_duplicate_total", "Span rows skipped because they were already stored (redeliveries)")
ENTRIES_READ = Counter("observatory_storage_entries_read_total", "Stream entries delivered to this writer (new, own pending and claimed)", ["source"])
ENTRIES_ACKED = Counter("observatory_storage_entries_acked_total", "Stream entries acknowledged after their batch committed")
DEAD_LETTERS = Counter("observatory_storage_dead_letters_total", "Stream entries moved to the dead-letter stream", ["reason"])
CLAIMED = Counter("observatory_storage_entries_claimed_total", "Entries claimed from consumers that stopped acknowledging")
WRITE_RETRIES = Counter("observatory_storage_write_retries_total", "Batch writes retried after a database error")
DB_ERRORS = Counter("observatory_storage_db_errors_total", "Database errors while writing, by kind (unavailable, data)", ["kind"])
REDIS_ERRORS = Counter("observatory_storage_redis_errors_total", "Redis calls that failed (the writer reconnects and retries)", ["operation"])
MAINTENANCE_RUNS = Counter("observatory_storage_maintenance_runs_total", "Runs of observatory_maintain (partitions, retention, policies)", ["outcome"])
BATCH_SPANS = Histogram(
    "observatory_storage_batch_spans", "Spans per written batch",
    buckets=(1, 10, 50, 100, 250, 500, 1000, 2500, 5000, 10000, 25000),
)
WRITE_SECONDS = Histogram(
    "observatory_storage_write_seconds", "Time to write one batch: COPY, insert from staging and commit",
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)
COPY_SECONDS = Histogram(
    "observatory_storage_copy_seconds", "Time of the COPY into the staging tables, per batch",
    buckets=(0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5),
)
DECODE_SECONDS = Histogram(
    "observatory_storage_decode_seconds", "Time to decode one stream entry into rows",
    buckets=(0.0001, 0.0005, 0.001, 0.005, 0.01, 0.05, 0.1, 0.5),
)
BACKLOG_SPANS = Gauge("observatory_storage_backlog_spans", "Spans in the streams not yet acknowledged (all shards)")
STREAM_PENDING = Gauge("observatory_storage_stream_pending_entries", "Entries delivered to the group and not yet acknowledged", ["stream"])
STREAM_LAG = Gauge("observatory_storage_stream_lag_entries", "Entries in the stream not yet delivered to the group", ["stream"])
SLOW_PATH_BATCHES = Counter(
    "observatory_storage_slow_path_batches_total",
    "Batches that held an already-stored span (a redelivery) and went through staging + ON CONFLICT",
)
ITEMS_WRITTEN = Counter("observatory_storage_items_written_total", "Log records and metric data points inserted (duplicates excluded)", ["signal"])
ITEMS_DUPLICATE = Counter("observatory_storage_items_duplicate_total", "Log records and data points skipped as already stored (redeliveries)", ["signal"])
