"""Collector throughput: spans/s per collector process on realistic LLM spans.

Two measurements, each with a baseline taken in the same run so the figure means something
on a loaded machine:

  pipeline  in this process: decode + the pipeline that build_pipeline() makes + XADD, with
            CONCURRENCY requests in flight; baseline = decode + serialize + XADD alone
            (what any collector must pay). Reports spans/s of wall time and spans per
            CPU-second of this process (the capacity of one core).
  server    a real `python -m collector` (COLLECTOR_WORKERS=1) driven over gRPC or HTTP by
            this process; reports spans/s and spans per CPU-second of the collector
            process (read from /proc), which is its per-core capacity even while the load
            generator competes for the same cores. Ratio: server_vs_baseline, the
            collector's spans per CPU-second over the in-process baseline's.

Redis is a private redis-server on a free port (the stream is trimmed as it grows), so a
run neither fills nor disturbs a shared Redis. `--redaction on|off` sets
ENABLE_PII_DETECTION and `--cost on|off` ENABLE_COST_CALCULATION for build_pipeline; the
stages actually present are printed.

    .venv/bin/python bench/collector/bench.py --mode pipeline --redaction off
    .venv/bin/python bench/collector/bench.py --mode server --protocol grpc --redaction on
    .venv/bin/python bench/collector/bench.py --mode pipeline --redaction both   # on/off CPU ratio, same rounds
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest  # noqa: E402
from redis.asyncio import Redis  # noqa: E402

from bench.collector.workload import export_request  # noqa: E402
from collector.app import build_pipeline  # noqa: E402
from collector.pipeline import SpanBatch  # noqa: E402
from collector.receivers.otlp_json import encode_request  # noqa: E402
from collector.settings import CollectorSettings  # noqa: E402
from common.settings import load  # noqa: E402
from common.stream import SpanStream, StreamEntry, StreamKeys  # noqa: E402

TRIM_EVERY_SECONDS = 0.5
KEEP_ENTRIES = 200


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class PrivateRedis:
    def __init__(self) -> None:
        if shutil.which("redis-server") is None:
            sys.exit("redis-server is needed for a private Redis")
        self.port = free_port()
        self.dir = tempfile.mkdtemp(prefix="bench-redis-")
        self.proc = subprocess.Popen(
            ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--dir", self.dir],
            stdout=subprocess.DEVNULL,
        )

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    async def wait(self) -> None:
        client = Redis.from_url(self.url)
        for _ in range(100):
            try:
                await client.ping()
                break
            except Exception:
                await asyncio.sleep(0.05)
        await client.aclose()

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(10)
        shutil.rmtree(self.dir, ignore_errors=True)


def wire(body: bytes) -> dict:
    """The body as received, as the receivers hand it to the pipeline (older commits had no such field)."""
    return {"wire": body} if "wire" in SpanBatch.__dataclass_fields__ else {}


def collector_environ(redis_url: str, args: argparse.Namespace, **extra: str) -> dict[str, str]:
    return {
        "REDIS_URL": redis_url, "MAX_QUEUE_SIZE": str(10**15), "ENABLE_SAMPLING": "false",
        "ENABLE_PII_DETECTION": "true" if args.redaction == "on" else "false",
        "ENABLE_COST_CALCULATION": "true" if args.cost == "on" else "false", "LOG_LEVEL": "warning", "OBSERVATORY_ENV_FILE": "/nonexistent", **extra,
    }


async def trim_forever(redis_url: str, keys: StreamKeys) -> None:
    """Keep the stream short: nothing reads it during a benchmark."""
    client = Redis.from_url(redis_url)
    try:
        while True:
            await asyncio.sleep(TRIM_EVERY_SECONDS)
            await client.xtrim(keys.stream(0), maxlen=KEEP_ENTRIES, approximate=True)
    finally:
        await client.aclose()


async def drive(send: Callable[[bytes], Awaitable[None]], bodies: list[bytes], requests: int, concurrency: int) -> float:
    """Send `requests` bodies with `concurrency` in flight; return the wall seconds."""
    next_index = 0

    async def worker() -> None:
        nonlocal next_index
        while next_index < requests:
            body = bodies[next_index % len(bodies)]
            next_index += 1
            await send(body)

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return time.perf_counter() - started


def median(runs: list[dict]) -> dict:
    """The round with the median CPU rate, plus the spread of that rate over all rounds."""
    ordered = sorted(runs, key=lambda r: r["spans_per_cpu_s"])
    chosen = dict(ordered[len(ordered) // 2])
    chosen["spans_per_cpu_s_range"] = [ordered[0]["spans_per_cpu_s"], ordered[-1]["spans_per_cpu_s"]]
    return chosen


def rate(spans: int, seconds: float) -> float:
    return round(spans / seconds) if seconds > 0 else 0.0


async def bench_pipeline(args: argparse.Namespace, redis_url: str, bodies: list[bytes], spans_per_request: int) -> dict:
    """With --redaction both, the pipeline with redaction on and off in the same rounds:
    `redaction_cpu_ratio` is CPU per span with redaction on over off, the median of the
    rounds' ratios (each round measures both a few seconds apart, under the same load)."""
    redis = Redis.from_url(redis_url)
    stream = SpanStream(redis, StreamKeys())
    switches = ("off", "on") if args.redaction == "both" else (args.redaction,)
    pipelines = {}
    for switch in switches:
        settings = load(CollectorSettings, collector_environ(redis_url, argparse.Namespace(**{**vars(args), "redaction": switch})))
        pipelines["pipeline" if len(switches) == 1 else f"pipeline_redaction_{switch}"] = build_pipeline(settings, stream)

    def through(pipeline):  # type: ignore[no-untyped-def]
        async def send(body: bytes) -> None:
            request = ExportTraceServiceRequest.FromString(body)
            await pipeline.handle(SpanBatch(request=request, received_ns=time.time_ns(), protocol="bench", **wire(body)))
        return send

    async def baseline(body: bytes) -> None:
        request = ExportTraceServiceRequest.FromString(body)
        await stream.publish(0, StreamEntry(body=request.SerializeToString(), spans=spans_per_request, received_ns=time.time_ns()))

    senders = {"baseline": baseline, **{name: through(p) for name, p in pipelines.items()}}
    trimmer = asyncio.create_task(trim_forever(redis_url, stream.keys))
    rounds: dict[str, list[dict]] = {name: [] for name in senders}
    try:
        for send in senders.values():
            await drive(send, bodies, max(2, args.requests // 10), args.concurrency)  # warm-up
        # Interleaved rounds, median reported: the machine's load changes under a run.
        for _ in range(args.rounds):
            for name, send in senders.items():
                cpu = time.process_time()
                wall = await drive(send, bodies, args.requests, args.concurrency)
                cpu = time.process_time() - cpu
                spans = args.requests * spans_per_request
                rounds[name].append({"spans_per_s": rate(spans, wall), "spans_per_cpu_s": rate(spans, cpu), "wall_s": round(wall, 2)})
    finally:
        trimmer.cancel()
        await redis.aclose()
    results: dict = {name: median(runs) for name, runs in rounds.items()}
    results["processors"] = {name: [getattr(p, "name", type(p).__name__) for p in pipeline.processors] for name, pipeline in pipelines.items()}
    for name in pipelines:
        results[f"{name}_vs_baseline"] = round(results[name]["spans_per_cpu_s"] / results["baseline"]["spans_per_cpu_s"], 3)
    if len(switches) == 2:
        ratios = sorted(off["spans_per_cpu_s"] / on["spans_per_cpu_s"]
                        for off, on in zip(rounds["pipeline_redaction_off"], rounds["pipeline_redaction_on"]))
        results["redaction_cpu_ratio"] = round(ratios[len(ratios) // 2], 3)
        results["redaction_cpu_ratio_range"] = [round(ratios[0], 3), round(ratios[-1], 3)]
    return results


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime + stime


async def bench_server(args: argparse.Namespace, redis_url: str, bodies: list[bytes], spans_per_request: int) -> dict:
    import aiohttp
    import grpc

    grpc_port, http_port, metrics_port = free_port(), free_port(), free_port()
    env = {**os.environ, **collector_environ(
        redis_url, args, COLLECTOR_HOST="127.0.0.1", METRICS_HOST="127.0.0.1", COLLECTOR_WORKERS="1",
        COLLECTOR_OTLP_GRPC_PORT=str(grpc_port), COLLECTOR_OTLP_HTTP_PORT=str(http_port), COLLECTOR_METRICS_PORT=str(metrics_port),
        COLLECTOR_GRPC_MAX_RECV_BYTES=str(64 * 1024 * 1024), COLLECTOR_HTTP_MAX_BODY_BYTES=str(64 * 1024 * 1024),
    ), "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen([sys.executable, "-m", "collector"], env=env, cwd=ROOT)
    trimmer = asyncio.create_task(trim_forever(redis_url, StreamKeys()))
    try:
        await _wait_ready(metrics_port, proc)
        if args.protocol == "grpc":
            channel = grpc.aio.insecure_channel(f"127.0.0.1:{grpc_port}")
            export = channel.unary_unary("/opentelemetry.proto.collector.trace.v1.TraceService/Export")

            async def send(body: bytes) -> None:
                await export(body, timeout=60)
        else:
            session = aiohttp.ClientSession()
            url = f"http://127.0.0.1:{http_port}/v1/traces"
            headers = {"Content-Type": f"application/{'json' if args.encoding == 'json' else 'x-protobuf'}"}
            if args.encoding == "json":
                bodies = [encode_request(ExportTraceServiceRequest.FromString(body)) for body in bodies]

            async def send(body: bytes) -> None:
                async with session.post(url, data=body, headers=headers) as response:
                    if response.status != 200:
                        raise RuntimeError(f"collector answered {response.status}: {await response.text()}")

        await drive(send, bodies, max(2, args.requests // 10), args.concurrency)  # warm-up
        runs = []
        for _ in range(args.rounds):
            cpu = cpu_seconds(proc.pid)
            wall = await drive(send, bodies, args.requests, args.concurrency)
            cpu = cpu_seconds(proc.pid) - cpu
            spans = args.requests * spans_per_request
            runs.append({"protocol": args.protocol, "encoding": args.encoding, "spans_per_s": rate(spans, wall), "spans_per_cpu_s": rate(spans, cpu),
                         "collector_cpu_s": round(cpu, 2), "wall_s": round(wall, 2)})
        if args.protocol == "grpc":
            await channel.close()
        else:
            await session.close()
    finally:
        trimmer.cancel()
        proc.terminate()
        proc.wait(30)
    return {"server": median(runs)}


async def _wait_ready(metrics_port: int, proc: subprocess.Popen) -> None:
    import aiohttp

    async with aiohttp.ClientSession() as session:
        for _ in range(300):
            if proc.poll() is not None:
                sys.exit(f"the collector exited with {proc.returncode}")
            try:
                async with session.get(f"http://127.0.0.1:{metrics_port}/ready") as response:
                    if response.status == 200:
                        return
            except aiohttp.ClientError:
                pass
            await asyncio.sleep(0.1)
    sys.exit("the collector did not become ready")


async def main_async(args: argparse.Namespace) -> dict:
    rng = random.Random(args.seed)
    requests = [export_request(rng, args.spans_per_request) for _ in range(8)]
    bodies = [r.SerializeToString() for r in requests]
    redis = PrivateRedis()
    try:
        await redis.wait()
        report = {
            "mode": args.mode, "redaction": args.redaction, "cost": args.cost, "requests": args.requests, "concurrency": args.concurrency,
            "spans_per_request": args.spans_per_request, "bytes_per_span": round(sum(map(len, bodies)) / len(bodies) / args.spans_per_request),
            "attributes_per_span": len(requests[0].resource_spans[0].scope_spans[0].spans[0].attributes),
        }
        report.update(await bench_pipeline(args, redis.url, bodies, args.spans_per_request))
        if args.mode == "server":
            report.update(await bench_server(args, redis.url, bodies, args.spans_per_request))
            report["server_vs_baseline"] = round(report["server"]["spans_per_cpu_s"] / report["baseline"]["spans_per_cpu_s"], 3)
        return report
    finally:
        redis.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--mode", choices=("pipeline", "server"), default="pipeline")
    parser.add_argument("--protocol", choices=("grpc", "http"), default="grpc", help="server mode: how to send")
    parser.add_argument("--encoding", choices=("protobuf", "json"), default="protobuf", help="server mode over http: the body's encoding")
    parser.add_argument("--redaction", choices=("on", "off", "both"), default="off", help="both: pipeline mode, on and off in the same rounds")
    parser.add_argument("--cost", choices=("on", "off"), default="on", help="ENABLE_COST_CALCULATION (on is the default setting)")
    parser.add_argument("--requests", type=int, default=200)
    parser.add_argument("--spans-per-request", type=int, default=512, help="the OpenTelemetry SDKs' default batch")
    parser.add_argument("--concurrency", type=int, default=4)
    parser.add_argument("--rounds", type=int, default=3, help="measured rounds; the median is reported")
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    if args.encoding == "json" and args.protocol != "http":
        parser.error("--encoding json needs --protocol http")
    if args.redaction == "both" and args.mode != "pipeline":
        parser.error("--redaction both needs --mode pipeline")
    report = asyncio.run(main_async(args))
    if args.redaction == "on" and not any("redact" in p for stages in report["processors"].values() for p in stages):
        print("warning: --redaction on, but build_pipeline has no redaction stage yet", file=sys.stderr)
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
