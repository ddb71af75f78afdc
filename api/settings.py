"""The query API's settings."""

from __future__ import annotations

from dataclasses import dataclass

from common.settings import LogSettings, ReadonlyDatabaseSettings, RedisSettings, ServiceSettings, env


@dataclass(frozen=True)
class ApiSettings(LogSettings, RedisSettings, ServiceSettings, ReadonlyDatabaseSettings):
    api_host: str = env("API_HOST", "0.0.0.0", "Address the query API listens on")
    api_port: int = env("API_PORT", 8080, "Query API port", minimum=1)
    api_metrics_port: int = env("API_METRICS_PORT", 9093, "Port of the API's /metrics, /health and /ready", minimum=1)
    db_pool_min: int = env("DB_POOL_MIN", 1, "Database connections the API keeps open", minimum=0)
    db_pool_max: int = env("DB_POOL_MAX", 10, "Most database connections the API opens", minimum=1)
    query_timeout: float = env("QUERY_TIMEOUT", 10.0, "Seconds a query may run before it is cancelled (statement_timeout)", minimum=0.1)
