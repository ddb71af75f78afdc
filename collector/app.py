"""The collector process: build the pipeline, serve gRPC, HTTP and ops, stop gracefully."""

from __future__ import annotations

import asyncio
import signal

from aiohttp import web
from redis.asyncio import Redis

from collector.exporter import StreamExporter
from collector.pipeline import Pipeline, Processor
from collector.processors import configure
from collector.processors.cost import CostCalculator
from collector.processors.pricing import load_pricing
from collector.processors.redaction import Redactor
from collector.processors.sampling import HeadSampler
from collector.processors.tail_sampling import TailSampler
from collector.processors.validation import Validator
from collector.receivers import grpc as grpc_receiver
from collector.receivers import http as http_receiver
from collector.settings import CollectorSettings
from common.logging import configure_logging, get_logger
from common.ops import ops_app, start_site
from common.settings import load
from common.stream import SpanStream, StreamKeys

log = get_logger("collector")


def build_pipeline(settings: CollectorSettings, stream: SpanStream) -> Pipeline:
    """The stages in the order of the architecture picture; switched-off ones are left out.

    Raises SettingsError (or ValueError naming the variable) for a configuration that cannot work.
    """
    exporter = StreamExporter(stream, settings.max_queue_size, settings.retry_after)
    processors: list[Processor] = [Validator()]
    if settings.enable_sampling:
        processors.append(HeadSampler(configure.head_sampling(settings)))
    if settings.enable_pii_detection:
        processors.append(Redactor(configure.redaction(settings)))
    if settings.enable_cost_calculation:
        processors.append(CostCalculator(load_pricing(settings.pricing_file)))
    if settings.tail_sampling:
        processors.append(TailSampler(configure.tail_sampling(settings), exporter))
    return Pipeline(processors=processors, exporter=exporter)


async def close_pipeline(pipeline: Pipeline) -> None:
    """Let stages that hold spans (tail sampling) publish them before the process exits."""
    for processor in pipeline.processors:
        aclose = getattr(processor, "aclose", None)
        if aclose is not None:
            await aclose()


async def serve(settings: CollectorSettings) -> None:
    redis = Redis.from_url(
        settings.redis_url, socket_timeout=settings.redis_timeout,
        socket_connect_timeout=settings.redis_timeout, health_check_interval=30,
    )
    stream = SpanStream(redis, StreamKeys(settings.redis_key_prefix, settings.stream_shards))
    pipeline = build_pipeline(settings, stream)

    async def check_redis() -> str | None:
        await redis.ping()
        return None

    grpc_server = grpc_receiver.make_server(pipeline, settings.collector_host, settings.collector_otlp_grpc_port)
    await grpc_server.start()
    http_runner = web.AppRunner(http_receiver.make_app(pipeline), access_log=None, handle_signals=False)
    await http_runner.setup()
    await web.TCPSite(http_runner, settings.collector_host, settings.collector_otlp_http_port, reuse_port=True).start()
    ops = await start_site(ops_app("collector", {"redis": check_redis}), settings.metrics_host, settings.collector_metrics_port)
    log.info(
        "collector listening",
        grpc=settings.collector_otlp_grpc_port, http=settings.collector_otlp_http_port,
        metrics=settings.collector_metrics_port,
    )

    stopping = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stopping.set)
    await stopping.wait()
    log.info("stopping: finishing in-flight requests")
    # New connections are refused from here; requests already inside finish their XADD.
    await asyncio.gather(
        grpc_server.stop(grace=settings.shutdown_timeout),
        http_runner.shutdown(),
    )
    await http_runner.cleanup()
    await close_pipeline(pipeline)
    await ops.cleanup()
    await redis.aclose()
    log.info("collector stopped")


def main() -> None:
    settings = load(CollectorSettings)
    configure_logging(settings.log_level, settings.log_format, "collector")
    asyncio.run(serve(settings))
