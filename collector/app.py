"""The collector process: build the pipeline, serve gRPC, HTTP and ops, stop gracefully.

With COLLECTOR_WORKERS > 1 (see collector/__main__.py) a supervisor (collector/workers.py)
runs `serve` in each worker process, with the OTLP ports shared through SO_REUSEPORT and
no ops port of its own.
"""

from __future__ import annotations

import asyncio
import os
import signal
from dataclasses import dataclass
from pathlib import Path

from collector.exporter import StreamExporter
from collector.inflight import InflightBudget
from collector.pipeline import Pipeline, Processor
from collector.processors import configure
from collector.processors.cost import CostCalculator
from collector.processors.pricing import load_price_book
from collector.processors.redaction import Redactor
from collector.processors.sampling import HeadSampler
from collector.processors.tail_sampling import TailSampler
from collector.processors.validation import Limits, Validator
from collector.receivers import grpc as grpc_receiver
from collector.receivers import http as http_receiver
from collector.settings import CollectorSettings
from common.logging import get_logger
from common.ops import ReadyCheck, ops_app, start_site
from common.redis_client import AnyRedis, connect, describe
from common.stream import SpanStream, StreamKeys

log = get_logger("collector")
PARENT_POLL_SECONDS = 1.0


def build_pipeline(settings: CollectorSettings, stream: SpanStream) -> Pipeline:
    """The stages in the order of the architecture picture; switched-off ones are left out.

    Raises SettingsError (or ValueError naming the variable) for a configuration that cannot work.
    """
    exporter = StreamExporter(stream, settings.max_queue_size, settings.retry_after)
    # With cost on, the LLM attributes are normalized in the cost stage's pass over them
    # (validation's rules, one read of the attributes for both stages).
    validator = Validator(Limits(future_window_s=settings.future_span_window),
                          scan_llm_attributes=not settings.enable_cost_calculation)
    processors: list[Processor] = [validator]
    if settings.enable_sampling:
        processors.append(HeadSampler(configure.head_sampling(settings)))
    if settings.enable_pii_detection:
        processors.append(Redactor(configure.redaction(settings)))
    if settings.enable_cost_calculation:
        processors.append(CostCalculator(load_price_book(settings.pricing_file), settings.sdk_cost_policy,
                                         llm_values=validator.llm_values))
    if settings.tail_sampling:
        processors.append(TailSampler(configure.tail_sampling(settings), exporter))
    inflight = InflightBudget(settings.collector_max_inflight_bytes, settings.retry_after)
    return Pipeline(processors=processors, exporter=exporter, inflight=inflight)


async def close_pipeline(pipeline: Pipeline) -> None:
    """Let stages that hold spans (tail sampling) publish them before the process exits."""
    for processor in pipeline.processors:
        aclose = getattr(processor, "aclose", None)
        if aclose is not None:
            await aclose()


def make_redis(settings: CollectorSettings) -> AnyRedis:
    # WAIT holds the connection up to REDIS_WAIT_TIMEOUT_MS: the read timeout must outlast it.
    read_timeout = settings.redis_timeout + settings.redis_wait_timeout_ms / 1000 if settings.redis_wait_replicas else None
    return connect(settings.redis_url, settings.redis_timeout, read_timeout=read_timeout, health_check_interval=30)


def make_stream(settings: CollectorSettings, redis: AnyRedis) -> SpanStream:
    return SpanStream(
        redis, StreamKeys(settings.redis_key_prefix, settings.stream_shards),
        wait_replicas=settings.redis_wait_replicas, wait_timeout_ms=settings.redis_wait_timeout_ms,
    )


def redis_check(stream: SpanStream, exporter: StreamExporter | None = None) -> ReadyCheck:
    """Ready while every shard can take entries: its server answers and is not out of memory
    (a shard whose master is down refuses every export with spans for it until its replica is
    promoted), and the last publish was not refused for lack of memory (a refused request's
    own bytes leave Redis's count with it)."""
    async def check() -> str | None:
        refusing = exporter.refusing() if exporter is not None else None
        return refusing or await stream.shard_problems()
    return check


def _stream_exporter(pipeline: Pipeline) -> StreamExporter | None:
    return pipeline.exporter if isinstance(pipeline.exporter, StreamExporter) else None


@dataclass(frozen=True)
class WorkerRole:
    """How a worker differs from a lone collector: shared ports, no ops port, a parent."""

    parent_pid: int
    ready_file: Path


async def serve(settings: CollectorSettings, worker: WorkerRole | None = None) -> None:
    redis = make_redis(settings)
    stream = make_stream(settings, redis)
    pipeline = build_pipeline(settings, stream)
    reuse_port = worker is not None
    grpc_server, health = grpc_receiver.make_server(
        pipeline, settings.collector_host, settings.collector_otlp_grpc_port,
        settings.collector_grpc_max_recv_bytes, reuse_port,
    )
    await grpc_server.start()
    await grpc_receiver.mark_serving(health)
    http_runner = await http_receiver.start(
        pipeline, settings.collector_host, settings.collector_otlp_http_port,
        settings.collector_http_max_body_bytes, reuse_port,
    )
    ops = None
    if worker is None:
        ops = await start_site(ops_app("collector", {"redis": redis_check(stream, _stream_exporter(pipeline))}), settings.metrics_host, settings.collector_metrics_port)
    else:
        worker.ready_file.touch()
    log.info(
        "collector listening", grpc=settings.collector_otlp_grpc_port, http=settings.collector_otlp_http_port,
        redis=describe(settings.redis_url), shards=settings.stream_shards, wait_replicas=settings.redis_wait_replicas,
        metrics=settings.collector_metrics_port if ops else None, worker_pid=os.getpid() if worker else None,
    )

    await _stop_requested(worker)
    log.info("stopping: finishing in-flight requests")
    await health.enter_graceful_shutdown()
    # New connections are refused from here; requests already inside finish their XADD.
    await asyncio.gather(grpc_server.stop(grace=settings.shutdown_timeout), http_runner.shutdown())
    await http_runner.cleanup()
    await close_pipeline(pipeline)
    if ops is not None:
        await ops.cleanup()
    await redis.aclose()
    log.info("collector stopped")


async def _stop_requested(worker: WorkerRole | None) -> None:
    """Return on SIGTERM / SIGINT, or, for a worker, when its supervisor has gone."""
    stopping = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stopping.set)
    if worker is None:
        await stopping.wait()
        return
    # A supervisor killed with SIGKILL cannot stop its workers; orphans would keep the ports.
    while not stopping.is_set() and os.getppid() == worker.parent_pid:
        try:
            await asyncio.wait_for(stopping.wait(), PARENT_POLL_SECONDS)
        except asyncio.TimeoutError:
            pass
