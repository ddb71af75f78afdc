"""The OTLP collector: receive, sample, redact, price, publish to Redis streams."""
import asyncio

from collector.app import serve
from collector.processors import configure
from collector.settings import CollectorSettings
from collector.workers import supervise
from common.cli import run_service
from common.logging import configure_logging
from common.settings import load


def _main() -> None:
    settings = load(CollectorSettings)
    configure.stages(settings)  # every stage's settings checked before a port opens or a worker starts
    configure_logging(settings.log_level, settings.log_format, "collector")
    if settings.collector_workers > 1:
        supervise(settings)
    else:
        asyncio.run(serve(settings))


def main() -> None:
    run_service(_main)


if __name__ == "__main__":
    main()
