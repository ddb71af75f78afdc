"""The storage writer's Prometheus metrics."""

from prometheus_client import Counter, Gauge, Histogram

SPANS_WRITTEN = Counter("observatory_storage_spans_written_total", "Span rows inserted (duplicates excluded)")
SPANS_DUPLICATE = Counter("observatory_storage_spans_duplicate_total", "Span rows skipped because they were already stored (redeliveries)")
ENTRIES_ACKED = Counter("observatory_storage_entries_acked_total", "Stream entries acknowledged after their batch committed")
DEAD_LETTERS = Counter("observatory_storage_dead_letters_total", "Stream entries moved to the dead-letter stream", ["reason"])
CLAIMED = Counter("observatory_storage_entries_claimed_total", "Entries claimed from consumers that stopped acknowledging")
WRITE_RETRIES = Counter("observatory_storage_write_retries_total", "Batch writes retried after a database error")
DB_ERRORS = Counter("observatory_storage_db_errors_total", "Database errors while writing", ["kind"])
BATCH_SPANS = Histogram(
    "observatory_storage_batch_spans", "Spans per written batch",
    buckets=(1, 10, 50, 100, 250, 500, 1000, 2500, 5000, 10000, 25000),
)
WRITE_SECONDS = Histogram(
    "observatory_storage_write_seconds", "Time to COPY and commit one batch",
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)
BACKLOG_SPANS = Gauge("observatory_storage_backlog_spans", "Spans in the streams not yet acknowledged (all shards)")
