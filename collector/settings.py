"""The collector's settings."""

from __future__ import annotations

from dataclasses import dataclass

from common.settings import LogSettings, RedisSettings, ServiceSettings, env


@dataclass(frozen=True)
class CollectorSettings(LogSettings, RedisSettings, ServiceSettings):
    collector_host: str = env("COLLECTOR_HOST", "0.0.0.0", "Address the OTLP receivers listen on")
    collector_otlp_grpc_port: int = env("COLLECTOR_OTLP_GRPC_PORT", 4317, "OTLP/gRPC port (TraceService/Export)", minimum=1)
    collector_otlp_http_port: int = env("COLLECTOR_OTLP_HTTP_PORT", 4318, "OTLP/HTTP port (POST /v1/traces)", minimum=1)
    collector_metrics_port: int = env("COLLECTOR_METRICS_PORT", 9091, "Port of the collector's /metrics, /health and /ready", minimum=1)
    max_queue_size: int = env("MAX_QUEUE_SIZE", 1_000_000, "Spans waiting in the streams (not yet written) above which the collector refuses new data with retryable errors", minimum=1)
    retry_after: int = env("RETRY_AFTER", 5, "Seconds a refused client is told to wait (Retry-After / RetryInfo)", minimum=1)

    # --- receivers: limits and processes (OTLP conformance) ---
    collector_http_max_body_bytes: int = env("COLLECTOR_HTTP_MAX_BODY_BYTES", 20 * 1024 * 1024, "Largest OTLP/HTTP request body accepted, counted after decompression (413 above it)", minimum=1024)
    collector_grpc_max_recv_bytes: int = env("COLLECTOR_GRPC_MAX_RECV_BYTES", 20 * 1024 * 1024, "Largest OTLP/gRPC message accepted, counted after decompression (RESOURCE_EXHAUSTED above it; grpc's own default is 4 MiB, which a batch of 512 prompt-carrying LLM spans passes)", minimum=1024)
    collector_workers: int = env("COLLECTOR_WORKERS", 1, "Collector processes sharing the OTLP ports through SO_REUSEPORT (one per core uses every core); metrics are summed over them", minimum=1)
