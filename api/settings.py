"""The query API's settings."""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass

from api.keys import parse_key_entries
from common.settings import LogSettings, ReadonlyDatabaseSettings, RedisSettings, ServiceSettings, SettingsError, env


@dataclass(frozen=True)
class ApiSettings(LogSettings, RedisSettings, ServiceSettings, ReadonlyDatabaseSettings):
    api_host: str = env("API_HOST", "0.0.0.0", "Address the query API listens on")
    api_port: int = env("API_PORT", 8080, "Query API port", minimum=1)
    api_metrics_port: int = env("API_METRICS_PORT", 9093, "Port of the API's /metrics, /health and /ready", minimum=1)
    db_pool_min: int = env("DB_POOL_MIN", 1, "Database connections the API keeps open", minimum=0)
    db_pool_max: int = env("DB_POOL_MAX", 10, "Most database connections the API opens", minimum=1)
    query_timeout: float = env("QUERY_TIMEOUT", 10.0, "Seconds a query may run before it is cancelled (statement_timeout)", minimum=0.1)
    api_keys: tuple[str, ...] = env(
        "API_KEYS", (),
        "API keys: NAME:SCOPES:SHA256 entries, separated by commas (or newlines in API_KEYS_FILE) (SCOPES: traces, usage or * joined by +; SHA256: hex "
        "digest of the key). Make one with `python -m api.keys new NAME SCOPES`",
        secret=True,
    )
    jwt_secret: str = env("JWT_SECRET", "", "HS256 secret for bearer JWTs (claims: sub, exp, scope); empty turns JWT off", secret=True)
    jwt_max_lifetime: int = env(
        "JWT_MAX_LIFETIME", 86400,
        "Longest lifetime, in seconds, of a JWT the API accepts: exp minus iat (minus now when iat is absent); longer-lived tokens are refused; 0 accepts any",
        minimum=0,
    )
    cursor_secret: str = env(
        "CURSOR_SECRET", "",
        "HMAC key that signs paging cursors; every API replica behind one address needs the same one. Empty: derived from JWT_SECRET, else from API_KEYS, else random per process (cursors then fail on another replica)",
        secret=True,
    )
    jwt_audience: str = env("JWT_AUDIENCE", "", "When set, a JWT's aud claim must contain it")
    api_auth_disabled: bool = env("API_AUTH_DISABLED", False, "Serve every route without credentials (logs a warning; for local use only)")
    rate_limit_requests: int = env("RATE_LIMIT_REQUESTS", 600, "Requests one credential may make per RATE_LIMIT_WINDOW; 0 turns the limit off", minimum=0)
    rate_limit_window: int = env("RATE_LIMIT_WINDOW", 60, "Seconds of the rate-limit window", minimum=1)
    cors_origins: tuple[str, ...] = env("CORS_ORIGINS", (), "Browser origins allowed to call the API (comma-separated, or *); empty sends no CORS headers")
    cache_ttl: int = env("API_CACHE_TTL", 30, "Seconds an aggregate answer (usage, services, models) stays in the Redis cache; 0 turns the cache off", minimum=0)
    default_window: int = env("API_DEFAULT_WINDOW", 3600, "Seconds before `end` a search looks when `start` is not given", minimum=1)
    max_search_window: int = env("API_MAX_SEARCH_WINDOW", 7 * 86400, "Widest time window, in seconds, of a trace or span search over raw spans", minimum=1)
    max_usage_window: int = env("API_MAX_USAGE_WINDOW", 90 * 86400, "Widest time window, in seconds, of usage, services and models answers", minimum=1)
    max_limit: int = env("API_MAX_LIMIT", 1000, "Most rows one page of a search may hold", minimum=1)
    trace_page_spans: int = env(
        "API_TRACE_PAGE_SPANS", 2000,
        "Most spans one answer of GET /traces/{trace_id} holds (its limit parameter may ask for fewer); a larger trace is paged with next_cursor",
        minimum=1,
    )
    tempo_trace_max_spans: int = env(
        "API_TEMPO_TRACE_MAX_SPANS", 5000,
        "Most spans the Tempo trace answer (GET /api/traces/{id}, /api/v2/traces/{id}) holds, the earliest by start time; "
        "it holds at most 4 times as many events, and as many links. A larger trace is answered partial (header "
        "X-Observatory-Truncated; in v2 also status PARTIAL and a message)",
        minimum=1,
    )
    percentile_sample_spans: int = env(
        "API_PERCENTILE_SAMPLE_SPANS", 100_000,
        "Above this many spans in a usage window, latency percentiles are estimated from a block sample of about this size",
        minimum=1000,
    )
    rollup_tiers: tuple[str, ...] = env(
        "API_ROLLUP_TIERS", ("1m", "1h"),
        "Rollup relations usage answers read, comma-separated: 1m (span_rollups_1m) and 1h (span_rollups_1h, for whole hours); 1m alone skips the hourly tier",
    )

    def cursor_key(self) -> bytes | None:
        """The key that signs cursors, the same on every replica given the same settings;
        None when nothing shared is configured (the process then makes a random one)."""
        for source, text in (("cursor", self.cursor_secret), ("jwt", self.jwt_secret), ("api-keys", ",".join(sorted(self.api_keys)))):
            if text:
                # A key of its own, not the JWT secret itself: a cursor's MAC is never a token's.
                return hmac.new(text.encode(), b"observatory cursor key from " + source.encode(), hashlib.sha256).digest()
        return None

    def validate(self) -> None:
        unknown = set(self.rollup_tiers) - {"1m", "1h"}
        if unknown or "1m" not in self.rollup_tiers:
            raise SettingsError(f"API_ROLLUP_TIERS must list 1m and optionally 1h, got {','.join(self.rollup_tiers)!r}")
        parse_key_entries(self.api_keys)  # raises SettingsError naming API_KEYS
        if self.cursor_secret and len(self.cursor_secret.encode()) < 32:
            raise SettingsError("CURSOR_SECRET must be at least 32 bytes")
        if self.jwt_secret and len(self.jwt_secret.encode()) < 32:
            raise SettingsError("JWT_SECRET must be at least 32 bytes (RFC 7518 asks HS256 keys to be as long as the hash)")
