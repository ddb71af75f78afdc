"""The collector's Prometheus metrics."""

from prometheus_client import Counter, Histogram

SPANS_RECEIVED = Counter("observatory_collector_spans_received_total", "Spans decoded from export requests", ["protocol"])
SPANS_ACCEPTED = Counter("observatory_collector_spans_accepted_total", "Spans published to the stream", ["protocol"])
SPANS_REJECTED = Counter("observatory_collector_spans_rejected_total", "Spans rejected (partial success)", ["protocol"])
REQUESTS = Counter("observatory_collector_requests_total", "Export requests by outcome", ["protocol", "outcome"])
REFUSED = Counter("observatory_collector_refused_total", "Export requests refused with a retryable answer", ["protocol", "reason"])
BAD_REQUESTS = Counter("observatory_collector_bad_requests_total", "Export requests answered with a client error", ["protocol", "reason"])
EXPORT_SECONDS = Histogram(
    "observatory_collector_request_seconds", "Time from a request's arrival to its answer", ["protocol"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5),
)
