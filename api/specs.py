"""The parameters each route accepts, declared once for validation and for /openapi.json."""

from __future__ import annotations

from api.params import Param
from common.otlp import SPAN_KINDS, STATUS_CODES

MAX_TOKENS = 2**53  # JSON numbers stay exact below this
MAX_COST = 1e9
MAX_HAS_ATTR = 10  # each is a containment test on every candidate span; 2,000 took 3.4 s
BUCKETS = {"1m": 60, "5m": 300, "15m": 900, "1h": 3600, "6h": 21600, "1d": 86400}

WINDOW = (
    Param("start", "time", "Window start, inclusive: RFC 3339 or unix nanoseconds (default: end minus API_DEFAULT_WINDOW)"),
    Param("end", "time", "Window end, exclusive: RFC 3339 or unix nanoseconds (default: now)"),
)
PAGE = (
    Param("limit", "int", "Most rows in one page", minimum=1, default=100),
    Param("cursor", "cursor", "The next_cursor of the previous page; the other parameters must be unchanged"),
)
_DURATION = (
    Param("min_duration_ms", "number", "Shortest duration, inclusive, in milliseconds", minimum=0, maximum=1e12),
    Param("max_duration_ms", "number", "Longest duration, inclusive, in milliseconds", minimum=0, maximum=1e12),
)
_LLM = (
    Param("model", "text", "LLM model: the request or response model"),
    Param("provider", "text", "LLM provider (gen_ai.provider.name / gen_ai.system)"),
)

TRACE_SEARCH = WINDOW + PAGE + _DURATION + _LLM + (
    Param("service", "text", "A service that has at least one span in the trace"),
    Param("root_name", "text", "Exact name of the root span"),
    Param("status", "enum", "error: at least one span has status error; ok: none has", choices=("error", "ok")),
    Param("min_cost_usd", "number", "Least total cost of the trace in USD", minimum=0, maximum=MAX_COST),
    Param("sort", "enum", "Order: start time or duration, - for descending", choices=("-start_time", "start_time", "-duration", "duration"), default="-start_time"),
)

_TOKEN_RANGES = tuple(
    Param(f"{edge}_{what}_tokens", "int", f"{'Fewest' if edge == 'min' else 'Most'} {what} tokens, inclusive", minimum=0, maximum=MAX_TOKENS)
    for what in ("input", "output", "total") for edge in ("min", "max")
)
SPAN_SEARCH = WINDOW + PAGE + _DURATION + _LLM + _TOKEN_RANGES + (
    Param("trace_id", "trace_id", "Only spans of this trace (32 hex characters)"),
    Param("service", "text", "Service name (resource attribute service.name)"),
    Param("name", "text", "Exact span name"),
    Param("name_prefix", "text", "Span names starting with this text"),
    Param("kind", "enum", "Span kind", choices=SPAN_KINDS),
    Param("status", "enum", "Span status code", choices=STATUS_CODES),
    Param("min_cost_usd", "number", "Least cost in USD, inclusive", minimum=0, maximum=MAX_COST),
    Param("max_cost_usd", "number", "Most cost in USD, inclusive", minimum=0, maximum=MAX_COST),
    Param("has_attr", "text", f"Only spans that have this span attribute (may be repeated, up to {MAX_HAS_ATTR} times)", repeat=True, max_items=MAX_HAS_ATTR),
    Param("sort", "enum", "Order by start time, - for newest first", choices=("-start_time", "start_time"), default="-start_time"),
)

TRACE_LIMIT = Param("limit", "int", "Most spans in this answer (default and most: API_TRACE_PAGE_SPANS); the rest are paged with next_cursor", minimum=1)
TRACE_BY_ID = (
    TRACE_LIMIT,
    Param("cursor", "cursor", "The next_cursor of the previous answer for this trace"),
)

SPAN_BY_ID = WINDOW + (
    Param("trace_id", "trace_id", "The span's trace (32 hex characters); makes the lookup an index probe instead of a window scan"),
)

USAGE = WINDOW + (
    Param("bucket", "enum", "Bucket width", choices=tuple(BUCKETS), default="1h"),
    Param("group_by", "enum", "Group series by service and/or model (may be repeated)", choices=("service", "model"), repeat=True, max_items=2),
    Param("service", "text", "Only this service"),
    Param("model", "text", "Only this model (request model, else response model)"),
    Param("provider", "text", "Only this LLM provider"),
)
INVENTORY = WINDOW

LOG_SEARCH = WINDOW + PAGE + (
    Param("service", "text", "Service name (resource attribute service.name)"),
    Param("trace_id", "trace_id", "Only records of this trace (32 hex characters)"),
    Param("span_id", "span_id", "Only records of this span (16 hex characters)"),
    Param("min_severity", "enum", "Least severity: trace, debug, info, warn, error or fatal (their SeverityNumber ranges)",
          choices=("trace", "debug", "info", "warn", "error", "fatal")),
    Param("event_name", "text", "Exact event name (gen_ai.client.inference.operation.details, gen_ai.choice, ...)"),
    Param("text", "text", "Text the body contains, case-insensitive (a structured body is searched as its JSON)"),
    Param("sort", "enum", "Order by time, - for newest first", choices=("-time", "time"), default="-time"),
)

METRIC_SERIES = WINDOW + (
    Param("name", "text", "Metric name (required)"),
    Param("service", "text", "Only points of this service"),
    Param("bucket", "enum", "Bucket width", choices=tuple(BUCKETS), default="1m"),
    Param("aggregation", "enum", "Per bucket: last/avg/min/max (gauges), sum/rate (sums: the increase), count/sum/avg/rate "
          "and p50/p90/p95/p99 from the buckets (histograms)",
          choices=("last", "avg", "min", "max", "sum", "rate", "count", "p50", "p90", "p95", "p99"), default="last"),
)
