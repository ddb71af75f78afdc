"""The collector's Prometheus metrics."""

from prometheus_client import Counter, Gauge, Histogram

SPANS_RECEIVED = Counter("observatory_collector_spans_received_total", "Spans decoded from export requests", ["protocol"])
SPANS_ACCEPTED = Counter("observatory_collector_spans_accepted_total", "Spans published to the stream", ["protocol"])
SPANS_REJECTED = Counter("observatory_collector_spans_rejected_total", "Spans rejected (partial success)", ["protocol"])
LOG_RECORDS_RECEIVED = Counter("observatory_collector_log_records_received_total", "Log records decoded from export requests", ["protocol"])
LOG_RECORDS_ACCEPTED = Counter("observatory_collector_log_records_accepted_total", "Log records published to the stream", ["protocol"])
LOG_RECORDS_REJECTED = Counter("observatory_collector_log_records_rejected_total", "Log records rejected (partial success)", ["protocol"])
DATA_POINTS_RECEIVED = Counter("observatory_collector_data_points_received_total", "Metric data points decoded from export requests", ["protocol"])
DATA_POINTS_ACCEPTED = Counter("observatory_collector_data_points_accepted_total", "Metric data points published to the stream", ["protocol"])
DATA_POINTS_REJECTED = Counter("observatory_collector_data_points_rejected_total", "Metric data points rejected (partial success)", ["protocol"])
REQUESTS = Counter("observatory_collector_requests_total", "Export requests by outcome", ["protocol", "outcome"])
REFUSED = Counter("observatory_collector_refused_total", "Export requests refused with a retryable answer", ["protocol", "reason"])
NORMALIZED = Counter("observatory_collector_normalized_values_total", "Values changed so the database can hold them (NUL replaced, text truncated, tokens clamped, zero parent cleared), by field", ["field"])
BAD_REQUESTS = Counter("observatory_collector_bad_requests_total", "Export requests answered with a client error", ["protocol", "reason"])
EXPORT_SECONDS = Histogram(
    "observatory_collector_request_seconds", "Time from a request's arrival to its answer", ["protocol"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5),
)

# --- processing: sampling, PII redaction, LLM cost (docs/COLLECTOR_PROCESSING.md) ---
SAMPLED_SPANS = Counter(
    "observatory_collector_sampled_spans_total", "Spans kept or dropped by sampling, by stage, decision and policy",
    ["stage", "decision", "policy"],
)
TAIL_TRACES = Counter(
    "observatory_collector_tail_traces_total", "Traces decided by tail sampling, by decision, policy and why it was decided",
    ["decision", "policy", "trigger"],
)
INFLIGHT_BYTES = Gauge("observatory_collector_inflight_bytes", "Decompressed bytes of export requests being handled now (COLLECTOR_MAX_INFLIGHT_BYTES bounds it per process)", multiprocess_mode="livesum")
TAIL_HELD_TRACES = Gauge("observatory_collector_tail_held_traces", "Traces held in memory waiting for a tail-sampling decision", multiprocess_mode="livesum")
TAIL_HELD_BYTES = Gauge("observatory_collector_tail_held_bytes", "Bytes of spans held in memory by tail sampling (undecided and kept-not-yet-published)", multiprocess_mode="livesum")
TAIL_EXPORT_FAILURES = Counter("observatory_collector_tail_export_failures_total", "Attempts to publish tail-kept spans that the stream refused (retried)", ["reason"])
REDACTIONS = Counter("observatory_collector_redactions_total", "Values redacted, by rule (a detector, 'key' or 'llm_content')", ["rule"])
COST_SPANS = Counter(
    "observatory_collector_cost_spans_total", "LLM spans seen by the cost stage, by outcome (priced, sdk_cost, unknown_model, no_tokens)",
    ["outcome"],
)
COST_UNPRICED = Counter(
    "observatory_collector_cost_unpriced_spans_total",
    "LLM spans with tokens whose model has no price (genai-prices nor PRICING_FILE), by model; "
    "after 200 distinct names the rest count as model=\"other\"",
    ["model"],
)


def item_counters(signal: str) -> tuple[Counter, Counter, Counter]:
    """(received, accepted, rejected) items of one signal: spans, log records or data points."""
    return {
        "traces": (SPANS_RECEIVED, SPANS_ACCEPTED, SPANS_REJECTED),
        "logs": (LOG_RECORDS_RECEIVED, LOG_RECORDS_ACCEPTED, LOG_RECORDS_REJECTED),
        "metrics": (DATA_POINTS_RECEIVED, DATA_POINTS_ACCEPTED, DATA_POINTS_REJECTED),
    }[signal]
