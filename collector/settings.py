"""The collector's settings."""

from __future__ import annotations

from dataclasses import dataclass

from common.settings import LogSettings, PublishSettings, RedisSettings, ServiceSettings, SettingsError, env


@dataclass(frozen=True)
class CollectorSettings(LogSettings, RedisSettings, PublishSettings, ServiceSettings):
    collector_host: str = env("COLLECTOR_HOST", "0.0.0.0", "Address the OTLP receivers listen on")
    collector_otlp_grpc_port: int = env("COLLECTOR_OTLP_GRPC_PORT", 4317, "OTLP/gRPC port (TraceService, LogsService and MetricsService Export)", minimum=1)
    collector_otlp_http_port: int = env("COLLECTOR_OTLP_HTTP_PORT", 4318, "OTLP/HTTP port (POST /v1/traces, /v1/logs, /v1/metrics)", minimum=1)
    collector_metrics_port: int = env("COLLECTOR_METRICS_PORT", 9091, "Port of the collector's /metrics, /health and /ready", minimum=1)
    max_queue_size: int = env("MAX_QUEUE_SIZE", 1_000_000, "Items of one signal (spans, log records or data points) waiting in its streams, not yet written, above which the collector refuses that signal with retryable errors", minimum=1)
    future_span_window: float = env("FUTURE_SPAN_WINDOW", 86400.0, "Seconds ahead of the collector's clock a span may start or end; later spans are rejected (partial success). At most 6 days, so the writer always has the day's partition", minimum=0)
    retry_after: int = env("RETRY_AFTER", 5, "Seconds a refused client is told to wait (Retry-After / RetryInfo)", minimum=1)

    # --- receivers: limits and processes (OTLP conformance) ---
    collector_http_max_body_bytes: int = env("COLLECTOR_HTTP_MAX_BODY_BYTES", 20 * 1024 * 1024, "Largest OTLP/HTTP request body accepted, counted after decompression (413 above it)", minimum=1024)
    collector_grpc_max_recv_bytes: int = env("COLLECTOR_GRPC_MAX_RECV_BYTES", 20 * 1024 * 1024, "Largest OTLP/gRPC message accepted, counted after decompression (RESOURCE_EXHAUSTED above it; grpc's own default is 4 MiB, which a batch of 512 prompt-carrying LLM spans passes)", minimum=1024)
    collector_max_inflight_bytes: int = env("COLLECTOR_MAX_INFLIGHT_BYTES", 64 * 1024 * 1024, "Decompressed bytes of export requests one collector process handles at once; a request that would pass it is refused with a retryable 429 / RESOURCE_EXHAUSTED before it is decoded (one request is always let through). Decoded messages take about 3x their body", minimum=1024)
    collector_workers: int = env("COLLECTOR_WORKERS", 1, "Collector processes sharing the OTLP ports through SO_REUSEPORT (one per core uses every core); metrics are summed over them", minimum=1)

    # --- processing: sampling, PII redaction, LLM cost (docs/COLLECTOR_PROCESSING.md) ---
    enable_sampling: bool = env("ENABLE_SAMPLING", False, "Head-sample traces by trace id (off keeps everything)")
    sampling_mode: str = env("SAMPLING_MODE", "hash_seed", "Head sampling: hash_seed (the OpenTelemetry Collector's FNV-1a trace-id hash) or proportional (W3C randomness, writes ot=th: into tracestate)", choices=("hash_seed", "proportional"))
    sampling_percentage: float = env("SAMPLING_PERCENTAGE", 100.0, "Percent of traces head sampling keeps (0-100)", minimum=0)
    sampling_hash_seed: int = env("SAMPLING_HASH_SEED", 0, "hash_seed of the trace-id hash; every replica (and any OpenTelemetry Collector sampling the same traces) must use the same", minimum=0)
    sampling_service_percentages: tuple[str, ...] = env("SAMPLING_SERVICE_PERCENTAGES", (), "Per-service head-sampling percent, service=percent,... (others get SAMPLING_PERCENTAGE)", example="")
    tail_sampling: bool = env("TAIL_SAMPLING", False, "Hold spans for TAIL_DECISION_WAIT and keep whole traces by policy; held spans are answered before they reach Redis (a crash loses them)")
    tail_decision_wait: float = env("TAIL_DECISION_WAIT", 10.0, "Seconds a trace's spans wait for the tail-sampling decision", minimum=0.01)
    tail_max_traces: int = env("TAIL_MAX_TRACES", 50_000, "Traces tail sampling holds at most; beyond, the oldest are decided early", minimum=1)
    tail_max_bytes: int = env("TAIL_MAX_BYTES", 268_435_456, "Bytes of spans tail sampling holds at most; beyond, the oldest are decided early", minimum=1024)
    tail_latency_ms: float = env("TAIL_LATENCY_MS", 5000.0, "Keep traces whose duration (or root span's) is over this many ms (0: off)", minimum=0)
    tail_cost_usd: float = env("TAIL_COST_USD", 0.05, "Keep traces whose LLM cost sums to more than this many USD (0: off)", minimum=0)
    tail_keep_services: tuple[str, ...] = env("TAIL_KEEP_SERVICES", (), "Always keep traces touching these services (regexes on service.name, comma-separated)")
    tail_keep_span_names: tuple[str, ...] = env("TAIL_KEEP_SPAN_NAMES", (), "Always keep traces with spans named like these (regexes, comma-separated)")
    tail_keep_attributes: tuple[str, ...] = env("TAIL_KEEP_ATTRIBUTES", (), "Always keep traces with a span attribute key=value (value * for any), comma-separated")
    tail_percentage: float = env("TAIL_PERCENTAGE", 10.0, "Percent of the traces no tail policy keeps that are kept anyway (consistent hash)", minimum=0)
    enable_pii_detection: bool = env("ENABLE_PII_DETECTION", True, "Redact PII and secrets from spans before they reach Redis")
    redaction_detectors: tuple[str, ...] = env("REDACTION_DETECTORS", ("secret", "credentials", "email", "iban", "card", "ssn", "phone", "ipv6", "ipv4"), "Detectors to run (remove one to switch it off)")
    redaction_strategy: str = env("REDACTION_STRATEGY", "mask", "What a detected value becomes: mask ([REDACTED:EMAIL]), hash (keyed HMAC-SHA256, equal values correlate) or remove (the attribute is deleted)", choices=("mask", "hash", "remove"))
    redaction_rule_strategies: tuple[str, ...] = env("REDACTION_RULE_STRATEGIES", (), "Per-rule strategy overrides, rule:strategy,... (rules: detector names, key, custom pattern names)", example="")
    redaction_hash_key: str = env("REDACTION_HASH_KEY", "", "Secret salt of the hash strategy (at least 16 characters); keep it stable to keep hashes comparable", secret=True)
    redaction_blocked_keys: tuple[str, ...] = env("REDACTION_BLOCKED_KEYS", (), "Extra regexes on attribute keys whose values are redacted whole (added to the built-in password/secret/token/authorization/... rules)")
    redaction_ignored_keys: tuple[str, ...] = env("REDACTION_IGNORED_KEYS", (), "Attribute keys (resource, scope, span, event, link) whose key and value are kept verbatim, e.g. service.name when service names must never change; a trailing * matches a prefix. Empty: every key and value is scanned")
    redaction_keep_private_ips: bool = env("REDACTION_KEEP_PRIVATE_IPS", True, "Keep loopback, RFC 1918 and link-local IPv4 addresses (and IPv6 loopback, unique-local, link-local): they name machines, not people; false redacts every address")
    redaction_work_limit: int = env("REDACTION_WORK_LIMIT", 500_000, "Work redaction may spend on one export request (1 a value, 8 a candidate match; 500,000 is about half a second of CPU); a request over it is refused with 413 / RESOURCE_EXHAUSTED, not retried", minimum=1)
    redaction_patterns_file: str | None = env("REDACTION_PATTERNS_FILE", None, "JSON file of your own detectors: {\"name\": \"regex\", ...}")
    redaction_drop_llm_content: bool = env("REDACTION_DROP_LLM_CONTENT", False, "Delete LLM prompt and completion content attributes entirely")
    redaction_summary: str = env("REDACTION_SUMMARY", "debug", "Summary attributes on redacted spans: debug (redaction.masked/redacted.count and .keys), info (counts only), silent (none)", choices=("debug", "info", "silent"))
    enable_cost_calculation: bool = env("ENABLE_COST_CALCULATION", True, "Compute LLM cost from token counts and prices (the genai-prices library's bundled data, read at start, no network)")
    pricing_file: str | None = env("PRICING_FILE", None, "JSON file of your own prices, layered over genai-prices: model patterns, per-token-type prices per 1M tokens, effective_from per entry (docs/COLLECTOR_PROCESSING.md; example: docs/pricing.example.json)")
    sdk_cost_policy: str = env("SDK_COST_POLICY", "plausible", "Whose cost a span keeps when its SDK sent one: plausible (the SDK's unless it is 0 with tokens used, or no price is known), always (the SDK's), never (the computed one); both are stored", choices=("plausible", "always", "never"))

    def validate(self) -> None:
        if self.future_span_window > 6 * 86400:
            raise SettingsError(f"FUTURE_SPAN_WINDOW must be at most 518400 (6 days), got {self.future_span_window:g}")
