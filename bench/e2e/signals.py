"""End-to-end benchmark of the two newer signals: log records/s and metric data points/s stored,
each beside its raw COPY ceiling measured in the same run.

    .venv/bin/python bench/e2e/signals.py --records 100000 --points 100000

Starts the collector and the storage writer against a fresh database and Redis key prefix,
pre-builds OTLP/HTTP protobuf requests (log records shaped like GenAI events: an
operation-details record with its messages as structured attributes for every fourth, plain
application lines for the rest; metric points as the openai-v2 instrumentation sends them:
token-usage and duration histograms, plus a gauge and a counter per service), sends them
with `--senders` concurrent senders at full speed, and times first send to last row visible.
Then the same rows (decoded by the writer's own code before the clock starts) are COPYed
straight into the emptied table: the ceiling of this database for those rows, now.
Prints one JSON line.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import subprocess
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

import aiohttp  # noqa: E402
import psycopg  # noqa: E402
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest  # noqa: E402
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import ExportMetricsServiceRequest  # noqa: E402

from bench.e2e.stack import BenchStack  # noqa: E402
from common.otlp import key_value  # noqa: E402
from storage import logs as log_rows  # noqa: E402
from storage import metric_points as point_rows  # noqa: E402
from storage.items import TableRows  # noqa: E402
from storage.writer import NO_LZ4, USE_LZ4, register_copy_dumpers  # noqa: E402

PER_REQUEST = 200
SERVICES = ("chat-api", "retriever", "billing", "support-bot")
BOUNDS = [1, 4, 16, 64, 256, 1024, 4096, 16384, 65536, 262144, 1048576, 4194304]


def log_request(first: int, now: int) -> bytes:
    request = ExportLogsServiceRequest()
    resource_logs = request.resource_logs.add()
    resource_logs.resource.attributes.append(key_value("service.name", SERVICES[first // PER_REQUEST % len(SERVICES)]))
    scope_logs = resource_logs.scope_logs.add()
    scope_logs.scope.name = "opentelemetry.util.genai.handler"
    for seq in range(first, first + PER_REQUEST):
        record = scope_logs.log_records.add(time_unix_nano=now + seq, observed_time_unix_nano=now + seq,
                                            trace_id=seq.to_bytes(16, "big"), span_id=(seq + 1).to_bytes(8, "big"))
        if seq % 4 == 0:
            record.event_name = "gen_ai.client.inference.operation.details"
            record.attributes.extend([
                key_value("gen_ai.operation.name", "chat"), key_value("gen_ai.request.model", "gpt-4o-mini"),
                key_value("gen_ai.input.messages", [{"role": "user", "parts": [{"type": "text", "content": f"Question {seq}: " + "why is the sky blue? " * 20}]}]),
                key_value("gen_ai.output.messages", [{"role": "assistant", "finish_reason": "stop",
                                                     "parts": [{"type": "text", "content": "Rayleigh scattering. " * 25}]}]),
                key_value("gen_ai.usage.input_tokens", 120 + seq % 50), key_value("gen_ai.usage.output_tokens", 80),
            ])
        else:
            record.severity_number, record.severity_text = 9, "INFO"
            record.body.string_value = f"request {seq} handled in {seq % 900} ms for tenant t-{seq % 97}"
            record.attributes.extend([key_value("http.route", "/v1/chat"), key_value("http.status_code", 200)])
    return request.SerializeToString()


def metric_request(first: int, now: int) -> bytes:
    """PER_REQUEST points: a quarter each of token usage, duration, gauge and counter, each a series of its own."""
    request = ExportMetricsServiceRequest()
    resource_metrics = request.resource_metrics.add()
    resource_metrics.resource.attributes.append(key_value("service.name", SERVICES[first // PER_REQUEST % len(SERVICES)]))
    scope = resource_metrics.scope_metrics.add()
    scope.scope.name = "opentelemetry.instrumentation.openai_v2"
    tokens = scope.metrics.add(name="gen_ai.client.token.usage", unit="{token}")
    duration = scope.metrics.add(name="gen_ai.client.operation.duration", unit="s")
    gauge = scope.metrics.add(name="queue.depth", unit="1")
    counter = scope.metrics.add(name="requests", unit="1")
    tokens.histogram.aggregation_temporality = duration.histogram.aggregation_temporality = 2
    counter.sum.aggregation_temporality, counter.sum.is_monotonic = 2, True
    for seq in range(first, first + PER_REQUEST):
        attrs = [key_value("gen_ai.request.model", "gpt-4o-mini"), key_value("series", seq)]
        kind = seq % 4
        if kind == 0:
            point = tokens.histogram.data_points.add(start_time_unix_nano=now - 10**9, time_unix_nano=now, count=9, sum=1500.0,
                                                     min=3.0, max=900.0, explicit_bounds=BOUNDS, bucket_counts=[0, 1, 1, 2, 2, 2, 1] + [0] * 6)
        elif kind == 1:
            point = duration.histogram.data_points.add(start_time_unix_nano=now - 10**9, time_unix_nano=now, count=9, sum=4.5,
                                                       explicit_bounds=[0.01, 0.1, 1, 10], bucket_counts=[0, 2, 5, 2, 0])
        elif kind == 2:
            point = gauge.gauge.data_points.add(time_unix_nano=now, as_double=seq * 0.5)
        else:
            point = counter.sum.data_points.add(start_time_unix_nano=now - 10**9, time_unix_nano=now, as_int=seq)
        point.attributes.extend(attrs)
    return request.SerializeToString()


async def send(url: str, bodies: list[bytes], senders: int) -> int:
    queue = list(reversed(bodies))
    refused = 0

    async def worker(session: aiohttp.ClientSession) -> None:
        nonlocal refused
        while queue:
            body = queue.pop()
            while True:
                async with session.post(url, data=body, headers={"Content-Type": "application/x-protobuf"}) as answer:
                    await answer.read()
                    if answer.status == 200:
                        break
                    refused += 1
                    await asyncio.sleep(float(answer.headers.get("Retry-After", "1")))

    async with aiohttp.ClientSession() as session:
        await asyncio.gather(*(worker(session) for _ in range(senders)))
    return refused


def count(dsn: str, table: str) -> int:
    with psycopg.connect(dsn) as conn:
        return conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0]  # noqa: S608 - fixed names


async def end_to_end(stack: BenchStack, signal: str, table: str, bodies: list[bytes], items: int, senders: int) -> dict:
    url = f"http://127.0.0.1:{stack.http_port}/v1/{signal}"
    started = time.perf_counter()
    refused = await send(url, bodies, senders)
    accepted = time.perf_counter()
    while (stored := await asyncio.to_thread(count, stack.dsn(), table)) < items:
        await asyncio.sleep(0.1)
    visible = time.perf_counter()
    return {"items": items, "stored": stored, "refusals": refused, "accepted_per_s": round(items / (accepted - started)),
            "stored_per_s": round(items / (visible - started)), "seconds": round(visible - started, 2)}


def ceiling(dsn: str, module: object, bodies: list[bytes]) -> dict:
    rows = TableRows.of(unit for body in bodies for unit in module.units(module.parse_request(body)))  # type: ignore[attr-defined]
    columns = ", ".join(module.COLUMNS)  # type: ignore[attr-defined]
    with psycopg.connect(dsn) as conn:
        register_copy_dumpers(conn)
        try:
            conn.execute(USE_LZ4)
        except NO_LZ4:
            conn.rollback()
        conn.execute(f"TRUNCATE {module.TABLE}")  # type: ignore[attr-defined]
        conn.commit()
        started = time.perf_counter()
        with conn.cursor() as cur, cur.copy(f"COPY {module.TABLE} ({columns}) FROM STDIN (FORMAT BINARY)") as copy:  # type: ignore[attr-defined]
            copy.set_types(list(module.TYPES))  # type: ignore[attr-defined]
            for row in rows.rows:
                copy.write_row(row)
        conn.commit()
        seconds = time.perf_counter() - started
    return {"rows": len(rows), "seconds": round(seconds, 2), "rows_per_s": round(len(rows) / seconds)}


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=100_000)
    parser.add_argument("--points", type=int, default=100_000)
    parser.add_argument("--senders", type=int, default=4)
    parser.add_argument("--admin-dsn", default=os.environ.get("BENCH_ADMIN_DSN", "postgresql://postgres@127.0.0.1:5432/postgres"))
    parser.add_argument("--redis-url", default=os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/0"))
    args = parser.parse_args()
    now = time.time_ns() - 60 * 10**9
    log_bodies = [log_request(first, now) for first in range(0, args.records, PER_REQUEST)]
    metric_bodies = [metric_request(first, now) for first in range(0, args.points, PER_REQUEST)]
    records, points = len(log_bodies) * PER_REQUEST, len(metric_bodies) * PER_REQUEST
    stack = BenchStack(args.admin_dsn, args.redis_url, ROOT / "bench" / "e2e" / ".work-signals")
    try:
        stack.start()
        result_logs = await end_to_end(stack, "logs", "logs", log_bodies, records, args.senders)
        result_points = await end_to_end(stack, "metrics", "metric_points", metric_bodies, points, args.senders)
        usage = stack.usage()
        stack.close_poll()
        for service in stack.services.values():
            service.stop()
        ceiling_logs = ceiling(stack.dsn(), log_rows, log_bodies)
        ceiling_points = ceiling(stack.dsn(), point_rows, metric_bodies)
    finally:
        stack.stop()
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True).stdout.strip()
    print(json.dumps({
        "bench": "e2e-signals", "commit": commit, "at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version()}, "senders": args.senders,
        "logs": {**result_logs, "ceiling": ceiling_logs, "ratio_to_ceiling": round(result_logs["stored_per_s"] / ceiling_logs["rows_per_s"], 3)},
        "metric_points": {**result_points, "ceiling": ceiling_points,
                          "ratio_to_ceiling": round(result_points["stored_per_s"] / ceiling_points["rows_per_s"], 3)},
        "services": usage,
    }))


if __name__ == "__main__":
    asyncio.run(main())
