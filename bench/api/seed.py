"""Seed a benchmark database with N spans over the last DAYS days by direct COPY.

    .venv/bin/python -m bench.api.seed --database obs_bench_api --spans 10000000 --days 7

Creates the database (dropping a previous one of that name only when --recreate is
given), migrates it, makes the daily partitions, COPYs traces of five spans (an HTTP
root, a retrieval, an LLM call, a tool call, a database query) from WORKERS processes,
then fills span_rollups_1m from the spans (as the storage writer or a continuous
aggregate would) and ANALYZEs. Data is deterministic for a given --seed.
"""

from __future__ import annotations

import argparse
import multiprocessing
import random
import time
from datetime import datetime, timedelta, timezone

import orjson
import psycopg
from psycopg import sql

from storage.migrations import Migrator

SERVICES = ("checkout", "search", "support-bot", "recommender", "billing", "onboarding", "analytics", "gateway")
MODELS = (("gpt-4o", "openai", 2.5, 10.0), ("gpt-4o-mini", "openai", 0.15, 0.6), ("claude-3-5-sonnet", "anthropic", 3.0, 15.0),
          ("claude-3-haiku", "anthropic", 0.25, 1.25), ("gemini-1.5-pro", "google", 1.25, 5.0), ("llama-3-70b", "meta", 0.6, 0.6))
ROUTES = ("POST /chat", "GET /search", "POST /answer", "POST /summarize", "GET /recommend")
TIERS = ("free", "pro", "enterprise")
SPANS_PER_TRACE = 5
CHUNK_TRACES = 20_000
COLUMNS = (
    "trace_id", "span_id", "parent_span_id", "name", "kind", "status_code", "service_name", "start_time", "end_time",
    "start_time_unix_nano", "end_time_unix_nano", "duration_ns", "llm_provider", "llm_request_model",
    "llm_response_model", "input_tokens", "output_tokens", "total_tokens", "cost_total_usd", "attributes",
    "resource_attributes",
)
NULL = "\\N"


def _ts(ns: int) -> str:
    seconds, micros = divmod(ns // 1000, 1_000_000)  # integer maths: a float would round some microseconds
    return datetime.fromtimestamp(seconds, tz=timezone.utc).strftime("%Y-%m-%d %H:%M:%S") + f".{micros:06d}+00"


def _json(value: dict) -> str:
    return orjson.dumps(value).decode().replace("\\", "\\\\")


def _line(values: tuple) -> str:
    return "\t".join(NULL if v is None else str(v) for v in values) + "\n"


def trace_lines(rng: random.Random, trace_number: int, start_ns: int) -> list[str]:
    trace_id = rng.getrandbits(128).to_bytes(16, "big").hex()
    ids = [rng.getrandbits(64).to_bytes(8, "big").hex() for _ in range(SPANS_PER_TRACE)]
    service = SERVICES[trace_number % len(SERVICES)]
    route = ROUTES[trace_number % len(ROUTES)]
    model, provider, price_in, price_out = MODELS[rng.randrange(len(MODELS))]
    tier = TIERS[rng.randrange(3)]
    resource = _json({"service.name": service, "deployment.environment": "bench", "service.version": "1.4.2"})
    llm_ms = rng.lognormvariate(6.5, 0.6)  # ~700 ms median, long tail
    input_tokens, output_tokens = rng.randrange(50, 4000), rng.randrange(10, 1200)
    cost = round((input_tokens * price_in + output_tokens * price_out) / 1e6, 10)
    error = rng.random() < 0.03
    total_ns = int((llm_ms + 80 + rng.random() * 50) * 1e6)
    spans = (
        (ids[0], None, route, 2, 2 if error else 1, service, start_ns, total_ns, None,
         {"http.route": route.split(" ")[1], "http.request.method": route.split(" ")[0], "user.tier": tier}),
        (ids[1], ids[0], "retrieve documents", 1, 0, service, start_ns + 2_000_000, int(rng.uniform(10, 60) * 1e6), None,
         {"retrieval.top_k": 5, "db.system": "pgvector"}),
        (ids[2], ids[0], f"chat {model}", 3, 2 if error else 0, service, start_ns + 70_000_000, int(llm_ms * 1e6),
         (provider, model, input_tokens, output_tokens, cost),
         {"gen_ai.request.model": model, "gen_ai.provider.name": provider, "gen_ai.operation.name": "chat", "user.tier": tier}),
        (ids[3], ids[2], "tool lookup_order", 1, 0, service, start_ns + 75_000_000, int(rng.uniform(1, 20) * 1e6), None,
         {"gen_ai.tool.name": "lookup_order"}),
        (ids[4], ids[0], "SELECT orders", 3, 0, service, start_ns + 71_000_000, int(rng.uniform(0.5, 8) * 1e6), None,
         {"db.system": "postgresql", "db.operation.name": "SELECT"}),
    )
    lines = []
    for span_id, parent, name, kind, status, svc, start, duration, llm, attrs in spans:
        end = start + duration
        provider_, model_, tin, tout, usd = llm if llm else (None, None, None, None, None)
        lines.append(_line((
            "\\\\x" + trace_id, "\\\\x" + span_id, ("\\\\x" + parent) if parent else None, name, kind, status, svc,
            _ts(start), _ts(end), start, end, duration, provider_, model_, (model_ + "-2024") if model_ else None,
            tin, tout, (tin + tout) if llm else None, usd, _json(attrs), resource,
        )))
    return lines


def copy_chunk(args: tuple[str, int, int, int, int, int]) -> int:
    dsn, seed, first_trace, traces, window_start_ns, window_ns = args
    rng = random.Random(seed * 1_000_003 + first_trace)
    spacing = window_ns // max(1, TOTAL_TRACES)
    with psycopg.connect(dsn, autocommit=True) as conn, conn.cursor() as cur:
        with cur.copy(f"COPY spans ({', '.join(COLUMNS)}) FROM STDIN") as copy:
            for number in range(first_trace, first_trace + traces):
                start = window_start_ns + number * spacing + rng.randrange(max(1, spacing))
                copy.write("".join(trace_lines(rng, number, start)))
    return traces * SPANS_PER_TRACE


TOTAL_TRACES = 0  # set in each worker by _init


def _init(total: int) -> None:
    global TOTAL_TRACES
    TOTAL_TRACES = total


def prepare(admin_dsn: str, name: str, recreate: bool, days: int, migrate_to: int | None = None) -> str:
    with psycopg.connect(admin_dsn, autocommit=True) as conn:
        if recreate:
            conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    dsn = psycopg.conninfo.make_conninfo(admin_dsn, dbname=name)
    with psycopg.connect(dsn) as conn, Migrator(conn) as migrator:
        migrator.up(to=migrate_to)
    today = datetime.now(timezone.utc).date()
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("SELECT observatory_ensure_partitions(%s, %s)", (today - timedelta(days=days + 1), today + timedelta(days=1)))
    return dsn


HOURLY = """
INSERT INTO span_rollups_1h
SELECT date_trunc('hour', bucket), service_name, model, provider, sum(span_count), sum(error_count), sum(input_tokens),
       sum(output_tokens), sum(cost_usd), sum(duration_sum_ns), max(duration_max_ns)
FROM span_rollups_1m GROUP BY 1, 2, 3, 4
"""


def fill_hourly_rollups(dsn: str) -> None:
    """The hourly tier from the per-minute one, as the writer or the hierarchical continuous
    aggregate keeps it (the seed COPYs spans past the writer, so it fills both tiers itself)."""
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("TRUNCATE span_rollups_1h")
        conn.execute(HOURLY)
        conn.execute("ANALYZE span_rollups_1h")


def uses_timescaledb(dsn: str) -> bool:
    with psycopg.connect(dsn) as conn:
        row = conn.execute("SELECT observatory_uses_timescaledb()").fetchone()
    return bool(row and row[0])


def refresh_and_compress(dsn: str, compress: bool) -> None:
    """TimescaleDB: materialize both continuous aggregates (as their policies would), then
    compress every chunk of the span tables when asked (the worst case for reads)."""
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("CALL refresh_continuous_aggregate('span_rollups_1m', NULL, NULL)")
        conn.execute("CALL refresh_continuous_aggregate('span_rollups_1h', NULL, NULL)")
        if compress:
            for table in ("spans", "span_events", "span_links"):
                conn.execute(f"SELECT count(compress_chunk(c, if_not_compressed => true)) FROM show_chunks('{table}') c")
        conn.execute("ANALYZE")


def fill_rollups(dsn: str) -> None:
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("""
            INSERT INTO span_rollups_1m
            SELECT date_trunc('minute', start_time), service_name, coalesce(llm_request_model, llm_response_model),
                   llm_provider, count(*), count(*) FILTER (WHERE status_code = 2), coalesce(sum(input_tokens), 0),
                   coalesce(sum(output_tokens), 0), coalesce(sum(cost_total_usd), 0), sum(duration_ns), max(duration_ns)
            FROM spans GROUP BY 1, 2, 3, 4
        """)
        conn.execute("ANALYZE")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--admin-dsn", default="postgresql://postgres@127.0.0.1:5432/postgres")
    parser.add_argument("--database", default="obs_bench_api")
    parser.add_argument("--spans", type=int, default=10_000_000)
    parser.add_argument("--days", type=int, default=7)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--recreate", action="store_true", help="drop the database first if it exists")
    parser.add_argument("--hourly-only", action="store_true", help="only refill span_rollups_1h of an existing database from its span_rollups_1m")
    parser.add_argument("--migrate-to", type=int, help="apply migrations up to this version only (a database as an older release made it)")
    parser.add_argument("--compress", action="store_true", help="TimescaleDB: compress every chunk after seeding")
    args = parser.parse_args()
    if args.hourly_only:
        fill_hourly_rollups(psycopg.conninfo.make_conninfo(args.admin_dsn, dbname=args.database))
        return
    dsn = prepare(args.admin_dsn, args.database, args.recreate, args.days, args.migrate_to)
    traces = args.spans // SPANS_PER_TRACE
    end_ns = time.time_ns() - 60 * 10**9
    window_ns = args.days * 86400 * 10**9
    chunks = [(dsn, args.seed, first, min(CHUNK_TRACES, traces - first), end_ns - window_ns, window_ns)
              for first in range(0, traces, CHUNK_TRACES)]
    started = time.perf_counter()
    written = 0
    with multiprocessing.Pool(args.workers, initializer=_init, initargs=(traces,)) as pool:
        for count in pool.imap_unordered(copy_chunk, chunks):
            written += count
            elapsed = time.perf_counter() - started
            print(f"\r{written:,} spans, {written / elapsed:,.0f}/s", end="", flush=True)
    copy_seconds = time.perf_counter() - started
    print(f"\ncopied {written:,} spans in {copy_seconds:.0f} s ({written / copy_seconds:,.0f} spans/s)")
    started = time.perf_counter()
    if uses_timescaledb(dsn):
        refresh_and_compress(dsn, args.compress)
        print(f"aggregates refreshed{', chunks compressed' if args.compress else ''} and analyzed in {time.perf_counter() - started:.0f} s")
        return
    fill_rollups(dsn)
    fill_hourly_rollups(dsn)
    print(f"rollups filled and analyzed in {time.perf_counter() - started:.0f} s")


if __name__ == "__main__":
    main()
