"""Writer throughput against the raw COPY ceiling of the same rows, same table, same run.

    .venv/bin/python -m bench.storage.bench_writer --spans 100000 [--gin] [--no-secondary-indexes]

1. makes a fresh database (DSN from --admin-dsn), migrated, with the chosen indexes;
2. ceiling: one binary COPY of the already-decoded rows straight into `spans` (no decode,
   no rollups, no Redis, one transaction), timed alone;
3. truncates, publishes the same spans as stream entries to Redis (not timed), runs the real
   StorageWriter loop (XREADGROUP → decode → COPY → rollups → commit → XACK) and times it
   from start to the last ack;
4. repeats 2-3 `--rounds` times, printing both rates and their ratio each round and the
   median ratio, then drops the database and the Redis keys.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import time
import uuid

import psycopg
import redis as redis_sync
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from psycopg import sql
from redis.asyncio import Redis

from common.otlp import key_value as _kv
from common.settings import load
from common.stream import SpanStream, StreamEntry, StreamKeys
from storage.app import StorageWriter
from storage.decode import SPAN_COLUMNS, SPAN_TYPES, decode
from storage.migrations import Migrator
from storage.settings import StorageSettings
from storage.writer import register_copy_dumpers

PROMPT = "You are a helpful assistant. " * 12  # ~350 bytes, like a redacted prompt attribute


def make_bodies(spans: int, per_entry: int, spread_s: float = 0.0) -> list[bytes]:
    """Entries of `per_entry` spans, ~1 KB of attributes each, a third of them LLM calls, one in
    fifty an error, start times spread evenly over the last `spread_s` seconds."""
    bodies, now = [], time.time_ns()
    step = max(1000, int(spread_s * 1e9 / max(spans, 1)))
    for first in range(0, spans, per_entry):
        req = ExportTraceServiceRequest()
        rs = req.resource_spans.add()
        rs.resource.attributes.extend([_kv("service.name", f"svc-{first % 7}"), _kv("host.name", "bench-1"),
                                       _kv("deployment.environment", "bench")])
        scope = rs.scope_spans.add()
        trace = os.urandom(16)
        for n in range(min(per_entry, spans - first)):
            start = now - (first + n) * step
            span = scope.spans.add(trace_id=trace, span_id=os.urandom(8), name=f"op-{n % 13}",
                                   start_time_unix_nano=start, end_time_unix_nano=start + 2_500_000, kind=n % 5)
            span.status.code = 2 if (first + n) % 50 == 0 else 0
            span.attributes.extend([_kv("http.route", f"/api/v1/items/{n % 50}"), _kv("gen_ai.prompt.0.content", PROMPT),
                                    _kv("user.id", f"user-{n % 1000}"), _kv("request.id", os.urandom(8).hex())])
            if n % 3 == 0:
                span.attributes.extend([_kv("gen_ai.request.model", "gpt-4o-mini"), _kv("gen_ai.provider.name", "openai"),
                                        _kv("gen_ai.usage.input_tokens", 500 + n), _kv("gen_ai.usage.output_tokens", 80)])
        bodies.append(req.SerializeToString())
    return bodies


def ceiling(dsn: str, bodies: list[bytes]) -> tuple[int, float]:
    """One binary COPY of the decoded rows straight into spans; returns (rows, seconds)."""
    rows = [row for body in bodies for row in decode(body).spans]
    with psycopg.connect(dsn) as conn:
        register_copy_dumpers(conn)
        conn.execute("SELECT observatory_ensure_partitions(current_date - 1, current_date + 1)")
        conn.commit()
        return len(rows), copy_spans(conn, rows)


def copy_spans(conn: psycopg.Connection, rows: list[tuple]) -> float:
    """Seconds to COPY the rows into spans and commit."""
    began = time.perf_counter()
    with conn.cursor() as cur, cur.copy(f"COPY spans ({', '.join(SPAN_COLUMNS)}) FROM STDIN (FORMAT BINARY)") as copy:
        copy.set_types(list(SPAN_TYPES))
        for row in rows:
            copy.write_row(row)
    conn.commit()
    return time.perf_counter() - began


async def through_writer(settings: StorageSettings, bodies: list[bytes], spans: int) -> float:
    keys = StreamKeys(settings.redis_key_prefix, 1)
    redis = Redis.from_url(settings.redis_url)
    stream = SpanStream(redis, keys)
    await stream.ensure_group()
    for body in bodies:  # publish everything before timing
        await stream.publish(0, StreamEntry(body, 0, 0))
    writer = StorageWriter(settings, redis)
    began = time.perf_counter()
    run = asyncio.create_task(writer.run())
    while True:
        pending = (await redis.xpending(keys.stream(0), "storage"))["pending"]
        lag = (await redis.xinfo_groups(keys.stream(0)))[0]["lag"]
        if pending == 0 and lag == 0:
            break
        await asyncio.sleep(0.02)
    elapsed = time.perf_counter() - began
    writer.stopping.set()
    await run
    await redis.delete(keys.stream(0), keys.backlog(0))  # ~1.3 KB a span: do not leave it in a shared Redis
    await redis.aclose()
    return elapsed


def truncate(dsn: str) -> None:
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("TRUNCATE spans, span_events, span_links, span_rollups_1m, span_rollups_1h")


def count(dsn: str) -> int:
    with psycopg.connect(dsn) as conn:
        row = conn.execute("SELECT count(*) FROM spans").fetchone()
    return int(row[0]) if row else 0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--admin-dsn", default="postgresql://postgres@127.0.0.1:5432/postgres")
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/0")
    parser.add_argument("--spans", type=int, default=100_000)
    parser.add_argument("--per-entry", type=int, default=100, help="spans per stream entry (one export request)")
    parser.add_argument("--batch-size", type=int, default=1000, help="BATCH_SIZE of the writer (its default)")
    parser.add_argument("--rounds", type=int, default=3, help="ceiling and writer runs, alternated")
    parser.add_argument("--gin", action="store_true", help="add a GIN jsonb_path_ops index on spans.attributes")
    parser.add_argument("--no-secondary-indexes", action="store_true", help="drop every index but the primary key")
    args = parser.parse_args()

    name = f"obs_bench_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(args.admin_dsn, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    dsn = psycopg.conninfo.make_conninfo(args.admin_dsn, dbname=name)
    prefix = f"obs-bench:{uuid.uuid4().hex[:8]}:"
    try:
        with psycopg.connect(dsn) as conn, Migrator(conn) as migrator:
            migrator.up()
            if args.no_secondary_indexes:
                for index in ("spans_time", "spans_service_time", "spans_model_time", "spans_error_time"):
                    conn.execute(sql.SQL("DROP INDEX {}").format(sql.Identifier(index)))
            if args.gin:
                conn.execute("CREATE INDEX spans_attributes ON spans USING gin (attributes jsonb_path_ops)")
        bodies = make_bodies(args.spans, args.per_entry)
        settings = load(StorageSettings, {
            "DATABASE_APP_URL": dsn, "REDIS_URL": args.redis_url, "REDIS_KEY_PREFIX": prefix,
            "BATCH_SIZE": str(args.batch_size), "FLUSH_INTERVAL": "0.2", "LOG_LEVEL": "warning",
        })
        indexes = "pk only" if args.no_secondary_indexes else "pk + 4 btree"
        print(f"spans={args.spans} indexes={indexes}{' + GIN jsonb_path_ops' if args.gin else ''} "
              f"batch={args.batch_size} load={os.getloadavg()[0]:.1f}")
        ratios = []
        for round_ in range(1, args.rounds + 1):
            # Alternate the two so that a change in the machine's load hits both alike.
            rows, copy_s = ceiling(dsn, bodies)
            truncate(dsn)
            writer_s = asyncio.run(through_writer(settings, bodies, rows))
            stored = count(dsn)
            assert stored == rows, f"writer stored {stored} of {rows} rows"
            truncate(dsn)
            ceiling_rate, writer_rate = rows / copy_s, rows / writer_s
            ratios.append(writer_rate / ceiling_rate)
            print(f"round {round_}: raw COPY {ceiling_rate:>8,.0f} rows/s   writer {writer_rate:>8,.0f} spans/s   "
                  f"writer/COPY {writer_rate / ceiling_rate:4.0%}")
        print(f"median writer/COPY: {statistics.median(ratios):.0%}")
    finally:
        with psycopg.connect(args.admin_dsn, autocommit=True) as conn:
            conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))
        client = redis_sync.Redis.from_url(args.redis_url)
        keys = list(client.scan_iter(match=f"{prefix}*", count=1000))
        if keys:
            client.delete(*keys)


if __name__ == "__main__":
    from common.logging import configure_logging

    configure_logging("warning", "pretty", "bench")
    main()
