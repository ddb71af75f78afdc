"""Settings the CLI reads: the admin DSN, the service DSNs whose roles it manages, Redis,
and where `seed` and `health` find the services."""

from __future__ import annotations

from dataclasses import dataclass

from common.settings import LogSettings, MigrationSettings, PublishSettings, RedisSettings, env
from storage.settings import RetentionSettings


@dataclass(frozen=True)
class CliSettings(LogSettings, RedisSettings, PublishSettings, MigrationSettings, RetentionSettings):
    seed_endpoint: str = env("SEED_ENDPOINT", "", "Collector address `observatory seed` sends OTLP to (default 127.0.0.1:4317 for gRPC, http://127.0.0.1:4318 for HTTP)")
    pricing_file: str = env("PRICING_FILE", "", "Pricing table (JSON); `observatory seed` names its models in LLM spans (default: the shipped table, else a built-in list)")
    collector_ready_url: str = env("COLLECTOR_READY_URL", "http://127.0.0.1:9091/ready", "The collector's /ready, checked by `observatory health`")
    storage_ready_url: str = env("STORAGE_READY_URL", "http://127.0.0.1:9092/ready", "The storage writer's /ready, checked by `observatory health`")
    api_ready_url: str = env("API_READY_URL", "http://127.0.0.1:9093/ready", "The API's /ready, checked by `observatory health`")
