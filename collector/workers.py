"""COLLECTOR_WORKERS > 1: a supervisor and N worker processes sharing the OTLP ports.

One asyncio loop uses one core, and decoding protobuf is CPU work, so the collector scales
on a machine by processes. Each worker binds the OTLP ports with SO_REUSEPORT and the
kernel spreads connections over them. The supervisor serves the ops port: /metrics sums
the workers' samples through prometheus_client's multiprocess mode (each worker writes
them to files in a directory private to this supervisor, so counters of a worker that
died still count), /ready says whether Redis answers and every worker is serving.

A worker that dies after it was serving is restarted; one that dies before (a port
taken, a bad setting) stops the whole collector with exit code 1, since restarting
cannot fix it.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

from prometheus_client import CollectorRegistry, multiprocess

from collector.app import WorkerRole, make_redis, make_stream, redis_check, serve
from collector.settings import CollectorSettings
from common.cli import run_service
from common.logging import configure_logging, get_logger
from common.ops import ReadyCheck, ops_app, start_site
from common.settings import load

log = get_logger("collector.workers")
RESTART_DELAY_SECONDS = 1.0
KILL_AFTER_SECONDS = 5.0


@dataclass
class Worker:
    index: int
    ready_file: Path
    process: asyncio.subprocess.Process | None = None

    def state(self) -> str | None:
        """None when serving, else why not."""
        if self.process is None or self.process.returncode is not None:
            return "not running"
        return None if self.ready_file.exists() else "starting"


def supervise(settings: CollectorSettings) -> None:
    with tempfile.TemporaryDirectory(prefix="observatory-collector-") as run_dir:
        failed = asyncio.run(_supervise(settings, Path(run_dir)))
    if failed:
        sys.exit(1)


async def _supervise(settings: CollectorSettings, run_dir: Path) -> bool:
    """Run the workers until SIGTERM / SIGINT; True when a worker failed to start."""
    metrics_dir = run_dir / "metrics"
    metrics_dir.mkdir()
    # The library reads its directory from the environment of the processes that count.
    child_env = {**os.environ, "PROMETHEUS_MULTIPROC_DIR": str(metrics_dir)}
    workers = [Worker(n, run_dir / f"ready-{n}") for n in range(settings.collector_workers)]
    redis = make_redis(settings)
    registry = CollectorRegistry()
    multiprocess.MultiProcessCollector(registry, path=str(metrics_dir))
    checks = {"redis": redis_check(make_stream(settings, redis)), "workers": _workers_check(workers)}
    ops = await start_site(ops_app("collector", checks, registry=registry), settings.metrics_host, settings.collector_metrics_port)
    log.info("collector supervisor started", workers=len(workers), metrics=settings.collector_metrics_port)

    stopping, failed = asyncio.Event(), asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stopping.set)
    keepers = [asyncio.create_task(_keep_running(w, child_env, metrics_dir, stopping, failed)) for w in workers]
    waiters = [asyncio.create_task(stopping.wait()), asyncio.create_task(failed.wait())]
    await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
    stopping.set()
    for waiter in waiters:
        waiter.cancel()
    await _stop_workers(workers, settings.shutdown_timeout + KILL_AFTER_SECONDS)
    await asyncio.gather(*keepers)
    await ops.cleanup()
    await redis.aclose()
    log.info("collector supervisor stopped")
    return failed.is_set()


async def _keep_running(worker: Worker, env: dict[str, str], metrics_dir: Path, stopping: asyncio.Event, failed: asyncio.Event) -> None:
    while not stopping.is_set():
        worker.ready_file.unlink(missing_ok=True)
        worker.process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "collector.workers",
            "--parent", str(os.getpid()), "--ready-file", str(worker.ready_file), env=env,
        )
        code = await worker.process.wait()
        multiprocess.mark_process_dead(worker.process.pid, str(metrics_dir))
        if stopping.is_set():
            return
        if not worker.ready_file.exists():
            log.error("collector worker exited during start-up; stopping the collector", worker=worker.index, exit_code=code)
            failed.set()
            return
        log.error("collector worker exited; restarting it", worker=worker.index, exit_code=code)
        await asyncio.sleep(RESTART_DELAY_SECONDS)


async def _stop_workers(workers: list[Worker], timeout: float) -> None:
    running = [w.process for w in workers if w.process is not None and w.process.returncode is None]
    for process in running:
        process.send_signal(signal.SIGTERM)
    if not running:
        return
    _done, pending = await asyncio.wait([asyncio.create_task(p.wait()) for p in running], timeout=timeout)
    if pending:
        log.error("collector workers did not stop in time; killing them", count=len(pending))
        for process in running:
            if process.returncode is None:
                process.kill()
        await asyncio.gather(*pending)


def _workers_check(workers: list[Worker]) -> ReadyCheck:
    async def check() -> str | None:
        problems = [f"worker {w.index} {state}" for w in workers if (state := w.state())]
        return "; ".join(problems) or None
    return check


def _worker_main() -> None:
    parser = argparse.ArgumentParser(description="one collector worker (started by the supervisor)")
    parser.add_argument("--parent", type=int, required=True)
    parser.add_argument("--ready-file", type=Path, required=True)
    args = parser.parse_args()
    settings = load(CollectorSettings)
    configure_logging(settings.log_level, settings.log_format, "collector")
    asyncio.run(serve(settings, WorkerRole(args.parent, args.ready_file)))


if __name__ == "__main__":
    run_service(_worker_main)
