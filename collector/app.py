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
from collector.pipeline import Pipeline, Pipelines, Processor
from collector.processors import configure
from collector.processors.cost import CostCalculator
from collector.processors.sampling import HeadSampler
from collector.processors.signal_redaction import LogRedaction, MetricRedaction
from collector.processors.tail_sampling import TailSampler
from collector.processors.signal_validation import LogValidator, MetricValidator
from collector.processors.validation import Validator
from collector.receivers import grpc as grpc_receiver
from collector.receivers import http as http_receiver
from collector.settings import CollectorSettings
from common.logging import get_logger
from common.ops import ReadyCheck, ops_app, start_site
from common.redis_client import AnyRedis, connect, describe
from common.signals import LOGS, METRICS, TRACES, Signal
from common.stream import SpanStream, StreamKeys

log = get_logger("collector")
PARENT_POLL_SECONDS = 1.0


def build_pipeline(settings: CollectorSettings, stream: SpanStream, stages: configure.Stages | None = None,
                   inflight: InflightBudget | None = None) -> Pipeline:
    """The trace stages in the order of the architecture picture; switched-off ones are left out.

    Raises SettingsError naming the variable for a configuration that cannot work.
    """
    stages = stages if stages is not None else configure.stages(settings)
    exporter = StreamExporter(stream, settings.max_queue_size, settings.retry_after)
    # With cost on, the LLM attributes are normalized in the cost stage's pass over them
    # (validation's rules, one read of the attributes for both stages).
    validator = Validator(stages.limits, scan_llm_attributes=stages.pricing is None)
    processors: list[Processor] = [validator]
    if stages.head_sampling is not None:
        processors.append(HeadSampler(stages.head_sampling))
    if stages.redactor is not None:
        processors.append(stages.redactor)
    if stages.pricing is not None:
        processors.append(CostCalculator(stages.pricing, settings.sdk_cost_policy, llm_values=validator.llm_values))
    if stages.tail_sampling is not None:
        processors.append(TailSampler(stages.tail_sampling, exporter))
    inflight = inflight if inflight is not None else InflightBudget(settings.collector_max_inflight_bytes, settings.retry_after)
    return Pipeline(processors=processors, exporter=exporter, inflight=inflight)


def build_pipelines(settings: CollectorSettings, redis: AnyRedis, stages: configure.Stages | None = None) -> Pipelines:
    """A pipeline per signal, each publishing to its own streams, sharing one in-flight budget.

    Logs and metrics are validated and redacted like spans; sampling and cost are about
    traces (token usage on log records or metrics is never priced, so it is never counted
    twice beside the span's).
    """
    stages = stages if stages is not None else configure.stages(settings)
    inflight = InflightBudget(settings.collector_max_inflight_bytes, settings.retry_after)

    def stream(signal: Signal) -> SpanStream:
        return make_stream(settings, redis, signal)

    def other(signal: Signal, validator: Processor, redaction: type) -> Pipeline:
        processors = [validator] + ([redaction(stages.redactor)] if stages.redactor is not None else [])
        exporter = StreamExporter(stream(signal), settings.max_queue_size, settings.retry_after)
        return Pipeline(processors=processors, exporter=exporter, inflight=inflight, signal=signal)

    return Pipelines(
        traces=build_pipeline(settings, stream(TRACES), stages, inflight),
        logs=other(LOGS, LogValidator(stages.limits), LogRedaction),
        metrics=other(METRICS, MetricValidator(stages.limits), MetricRedaction),
    )


async def close_pipeline(pipelines: Pipelines) -> None:
    """Let stages that hold spans (tail sampling) publish them before the process exits."""
    for processor in pipelines.traces.processors:
        aclose = getattr(processor, "aclose", None)
        if aclose is not None:
            await aclose()


def make_redis(settings: CollectorSettings) -> AnyRedis:
    # WAIT holds the connection up to REDIS_WAIT_TIMEOUT_MS: the read timeout must outlast it.
    read_timeout = settings.redis_timeout + settings.redis_wait_timeout_ms / 1000 if settings.redis_wait_replicas else None
    return connect(settings.redis_url, settings.redis_timeout, read_timeout=read_timeout, health_check_interval=30)


def make_stream(settings: CollectorSettings, redis: AnyRedis, signal: Signal = TRACES) -> SpanStream:
    return SpanStream(
        redis, StreamKeys(settings.redis_key_prefix, settings.stream_shards, signal.stream),
        wait_replicas=settings.redis_wait_replicas, wait_timeout_ms=settings.redis_wait_timeout_ms,
    )


def redis_check(stream: SpanStream, exporters: list[StreamExporter] | None = None) -> ReadyCheck:
    """Ready while every shard can take entries: its server answers and is not out of memory
    (a shard whose master is down refuses every export with spans for it until its replica is
    promoted), and the last publish of no signal was refused for lack of memory (a refused
    request's own bytes leave Redis's count with it)."""
    async def check() -> str | None:
        refusing = next((r for r in (e.refusing() for e in exporters or ()) if r), None)
        return refusing or await stream.shard_problems()
    return check


def _stream_of(pipelines: Pipelines) -> SpanStream:
    """The span streams, whose shards /ready checks (the other signals' share their servers)."""
    exporter = pipelines.traces.exporter
    assert isinstance(exporter, StreamExporter)
    return exporter.stream


def _stream_exporters(pipelines: Pipelines) -> list[StreamExporter]:
    return [p.exporter for p in pipelines.all() if isinstance(p.exporter, StreamExporter)]


@dataclass(frozen=True)
class WorkerRole:
    """How a worker differs from a lone collector: shared ports, no ops port, a parent."""

    parent_pid: int
    ready_file: Path


async def serve(settings: CollectorSettings, worker: WorkerRole | None = None) -> None:
    redis = make_redis(settings)
    pipelines = build_pipelines(settings, redis)
    reuse_port = worker is not None
    grpc_server, health = grpc_receiver.make_server(
        pipelines, settings.collector_host, settings.collector_otlp_grpc_port,
        settings.collector_grpc_max_recv_bytes, reuse_port,
    )
    await grpc_server.start()
    await grpc_receiver.mark_serving(health)
    http_runner = await http_receiver.start(
        pipelines, settings.collector_host, settings.collector_otlp_http_port,
        settings.collector_http_max_body_bytes, reuse_port,
    )
    ops = None
    if worker is None:
        ops = await start_site(ops_app("collector", {"redis": redis_check(_stream_of(pipelines), _stream_exporters(pipelines))}), settings.metrics_host, settings.collector_metrics_port)
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
    await close_pipeline(pipelines)
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
