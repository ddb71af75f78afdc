"""The collector's receivers and pipeline running in the test's event loop, on free ports,
publishing to the real Redis under the test's key prefix."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, replace
from typing import Any

import grpc
import pytest
import redis as redis_sync
from aiohttp import web

from collector.app import build_pipelines, make_redis
from collector.receivers import grpc as grpc_receiver
from collector.receivers import http as http_receiver
from collector.settings import CollectorSettings
from common.settings import load
from common.signals import TRACES, Signal
from common.stream import StreamEntry, StreamKeys
from tests.conftest import REDIS_URL
from tests.support import OtlpEndpoints, free_port


@dataclass
class Receivers(OtlpEndpoints):
    settings: CollectorSettings
    keys: StreamKeys
    redis: redis_sync.Redis
    http_port: int
    grpc_port: int

    def published(self, signal: Signal = TRACES) -> list[Any]:
        """Every request on the signal's stream (the span stream by default), oldest first."""
        keys = replace(self.keys, signal=signal.stream)
        return [signal.parse(StreamEntry.from_fields(fields, signal.count_field).body)
                for _id, fields in self.redis.xrange(keys.stream(0))]

    def backlog(self, signal: Signal = TRACES) -> int:
        return int(self.redis.get(replace(self.keys, signal=signal.stream).backlog(0)) or 0)


StartReceivers = Callable[..., Any]


@pytest.fixture
def start_receivers(redis_prefix: str, redis_client: redis_sync.Redis) -> StartReceivers:
    """`async with start_receivers(MAX_QUEUE_SIZE="10") as receivers:` with settings overrides."""

    @asynccontextmanager
    async def start(**environ: str) -> AsyncIterator[Receivers]:
        http_port, grpc_port = free_port(), free_port()
        settings = load(CollectorSettings, {
            "REDIS_URL": REDIS_URL, "REDIS_KEY_PREFIX": redis_prefix, "COLLECTOR_HOST": "127.0.0.1",
            "COLLECTOR_OTLP_HTTP_PORT": str(http_port), "COLLECTOR_OTLP_GRPC_PORT": str(grpc_port),
            "REDIS_TIMEOUT": "2", **environ,
        })
        redis = make_redis(settings)
        keys = StreamKeys(settings.redis_key_prefix, settings.stream_shards)
        pipelines = build_pipelines(settings, redis)
        server, health = grpc_receiver.make_server(pipelines, "127.0.0.1", grpc_port, settings.collector_grpc_max_recv_bytes, False)
        await server.start()
        await grpc_receiver.mark_serving(health)
        runner: web.AppRunner = await http_receiver.start(pipelines, "127.0.0.1", http_port, settings.collector_http_max_body_bytes, False)
        try:
            yield Receivers(settings, keys, redis_client, http_port, grpc_port)
        finally:
            await server.stop(grace=1)
            await runner.cleanup()
            await redis.aclose()

    return start


@pytest.fixture
async def receivers(start_receivers: StartReceivers) -> AsyncIterator[Receivers]:
    async with start_receivers(COLLECTOR_HTTP_MAX_BODY_BYTES=str(1024 * 1024), COLLECTOR_GRPC_MAX_RECV_BYTES=str(1024 * 1024)) as running:
        yield running


@pytest.fixture
async def grpc_channel(receivers: Receivers) -> AsyncIterator[grpc.aio.Channel]:
    async with grpc.aio.insecure_channel(receivers.grpc_target) as channel:
        yield channel
