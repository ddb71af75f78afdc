"""The API's Prometheus metrics (served on API_METRICS_PORT)."""

from prometheus_client import Counter, Histogram

REQUESTS = Counter("observatory_api_requests_total", "Requests answered, by route, method and status", ["route", "method", "status"])
LATENCY = Histogram(
    "observatory_api_request_duration_seconds", "Time to answer a request, by route", ["route"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.3, 0.5, 1, 2.5, 5, 10),
)
ERRORS = Counter("observatory_api_errors_total", "Requests that failed, by route and kind (client, server, timeout)", ["route", "kind"])
AUTH_FAILURES = Counter("observatory_api_auth_failures_total", "Requests refused by authentication or authorisation, by reason", ["reason"])
RATE_LIMITED = Counter("observatory_api_rate_limited_total", "Requests refused with 429")
CACHE = Counter("observatory_api_cache_requests_total", "Aggregate answers looked up in the Redis cache, by result (hit, miss, error)", ["result"])
REDIS_ERRORS = Counter("observatory_api_redis_errors_total", "Redis calls that failed (the API answers without the cache or the limit)", ["use"])
