"""Settings the CLI reads: the admin DSN, the service DSNs whose roles it manages, Redis,
and where `seed` and `health` find the services."""

from __future__ import annotations

from dataclasses import dataclass

from common.settings import LogSettings, MigrationSettings, PublishSettings, RedisSettings, env
from storage.settings import RetentionSettings


@dataclass(frozen=True)
class CliSettings(LogSettings, RedisSettings, PublishSettings, MigrationSettings, RetentionSettings):
    seed_endpoint: str = env("SEED_ENDPOINT", "", "Collector address `observatory seed` sends OTLP to (default 127.0.0.1:4317 for gRPC, http://127.0.0.1:4318 for HTTP)")
    pricing_file: str = env("PRICING_FILE", "", "Your prices over genai-prices (JSON); `observatory reprice` prices with them as the collector does, and `observatory seed` names their literal models in LLM spans (default: a built-in list)")
    sdk_cost_policy: str = env("SDK_COST_POLICY", "plausible", "Whose cost a span keeps when its SDK sent one: plausible (the SDK's unless it is 0 with tokens used, or no price is known), always (the SDK's), never (the computed one); both are stored", choices=("plausible", "always", "never"))
    collector_ready_url: str = env("COLLECTOR_READY_URL", "http://127.0.0.1:9091/ready", "The collector's /ready, checked by `observatory health`")
    storage_ready_url: str = env("STORAGE_READY_URL", "http://127.0.0.1:9092/ready", "The storage writer's /ready, checked by `observatory health`")
    api_ready_url: str = env("API_READY_URL", "http://127.0.0.1:9093/ready", "The API's /ready, checked by `observatory health`")
