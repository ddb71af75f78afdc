"""The storage writer's settings."""

from __future__ import annotations

import os
import socket
from dataclasses import dataclass

from common.settings import LogSettings, MigrationSettings, RedisSettings, ServiceSettings, SettingsError, env


# Bytes one span takes in a chunk with its indexes (primary key, time, service, model and
# error indexes), measured on the load generator's spans; docs/STORAGE.md.
SPAN_BYTES = 1700


@dataclass(frozen=True)
class RetentionSettings:
    """How long spans are kept and how they are laid out; applied by observatory_maintain()."""

    retention_days: int = env("RETENTION_DAYS", 30, "Days spans, events, links and rollups are kept (0 keeps them forever); older partitions or chunks are dropped", minimum=0)
    compress_after_days: int = env("COMPRESS_AFTER_DAYS", 2, "TimescaleDB only: compress chunks older than this many days, segmented by service (0 turns compression off)", minimum=0)
    chunk_interval_hours: int = env(
        "CHUNK_INTERVAL_HOURS", 0,
        "TimescaleDB only: hours of spans per hypertable chunk; 0 sizes it from EXPECTED_SPANS_PER_SECOND and CHUNK_MEMORY_MB (24 when no rate is given). Plain PostgreSQL always uses daily partitions",
        minimum=0,
    )
    expected_spans_per_second: float = env(
        "EXPECTED_SPANS_PER_SECOND", 0.0,
        "TimescaleDB only: the sustained ingest rate the chunk interval is sized for (0: unknown, 24-hour chunks)", minimum=0,
    )
    chunk_memory_mb: int = env(
        "CHUNK_MEMORY_MB", 1024,
        "TimescaleDB only: memory one chunk of spans with its indexes may take; about 25% of the database server's memory",
        minimum=16,
    )
    partitions_ahead_days: int = env("PARTITIONS_AHEAD_DAYS", 3, "Plain PostgreSQL only: daily partitions created ahead of today", minimum=0)
    maintenance_interval: float = env("MAINTENANCE_INTERVAL", 3600.0, "Seconds between the writer's runs of observatory_maintain (partitions ahead, retention, policies)", minimum=1)

    @property
    def chunk_hours(self) -> int:
        """CHUNK_INTERVAL_HOURS when given; else the hours of spans at the expected rate that
        fill CHUNK_MEMORY_MB (TimescaleDB's advice: the newest chunk and its indexes fit in
        about a quarter of memory), between 1 and 24."""
        if self.chunk_interval_hours:
            return self.chunk_interval_hours
        if not self.expected_spans_per_second:
            return 24
        hours = self.chunk_memory_mb * 2**20 / (self.expected_spans_per_second * SPAN_BYTES * 3600)
        return max(1, min(24, int(hours)))


@dataclass(frozen=True)
class StorageSettings(LogSettings, RedisSettings, ServiceSettings, MigrationSettings, RetentionSettings):
    run_migrations: bool = env("RUN_MIGRATIONS", False, "Apply pending migrations when the writer starts, as `observatory migrate up` does (creates the database, sets the roles' passwords from their DSNs)")
    batch_size: int = env("BATCH_SIZE", 5000, "Most spans per database write. A batch is written when it reaches this size, FLUSH_INTERVAL after its first span, or as soon as the database side is free (group commit), so it only grows this large under load", minimum=1)
    batch_max_bytes: int = env("BATCH_MAX_BYTES", 64 * 1024 * 1024, "Most bytes of rows (attribute documents and about 400 bytes per row) one batch holds; a larger entry is written in parts, each its own transaction, and acknowledged after the last", minimum=1024)
    flush_interval: float = env("FLUSH_INTERVAL", 1.0, "Most seconds a partial batch waits while the previous batch is still being written", minimum=0.01)
    consumer_name: str = env("CONSUMER_NAME", "", "This writer's name in the consumer group (default: hostname-pid)")
    claim_idle: float = env("CLAIM_IDLE", 60.0, "Seconds an entry may sit unacknowledged in another consumer's pending list before this writer claims it", minimum=1)
    max_deliveries: int = env("MAX_DELIVERIES", 5, "Failed writes of an entry, for a reason of its own (not a database outage or a restart), after which it goes to the dead-letter stream", minimum=1)
    storage_metrics_port: int = env("STORAGE_METRICS_PORT", 9092, "Port of the writer's /metrics, /health and /ready", minimum=1)
    ack_delay: float = env("ACK_DELAY", 0.0, "Fault-injection tests only: seconds to wait between commit and XACK (leave 0)", minimum=0)

    @property
    def consumer(self) -> str:
        return self.consumer_name or f"{socket.gethostname()}-{os.getpid()}"

    def validate(self) -> None:
        if self.batch_size > 100_000:
            raise SettingsError(f"BATCH_SIZE must be at most 100000, got {self.batch_size}")
