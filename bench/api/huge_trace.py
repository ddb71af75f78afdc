"""One trace of --spans spans (a root and its children) read through the API: every page of
GET /traces/{id} (with --tempo: the Tempo endpoint's one answer), the answer sizes, the
API's peak memory, and /health answered meanwhile.

    .venv/bin/python -m bench.api.huge_trace --database obs_bench_api --spans 300000
    .venv/bin/python -m bench.api.huge_trace --database obs_bench_api --spans 100000 --tempo --baseline d2db099

Writes the trace into the database first when it is not there (trace id b1b1…, spans one
millisecond apart starting a day ago). With --baseline COMMIT the same is done against that
commit's API (its answer is the whole trace in one response). Takes minutes for 300,000
spans on a busy 2-core machine. Prints JSON.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import shutil
import time
from pathlib import Path
from typing import Any

import aiohttp
import psycopg

from api.keys import new_key
from bench.api.run import PROCESSES, ROOT, api_process, checkout, summary

TRACE = bytes.fromhex("b1" * 16)


def ensure_trace(admin_dsn: str, spans: int) -> None:
    with psycopg.connect(admin_dsn, autocommit=True) as conn:
        row = conn.execute("SELECT count(*) FROM spans WHERE trace_id = %s", (TRACE,)).fetchone()
        if row and row[0] == spans:
            return
        conn.execute("DELETE FROM spans WHERE trace_id = %s", (TRACE,))
        day_ago = int(time.time()) - 86400
        conn.execute("""
            INSERT INTO spans (trace_id, span_id, parent_span_id, name, service_name, start_time, end_time,
                               start_time_unix_nano, end_time_unix_nano, duration_ns, input_tokens,
                               attributes, resource_attributes)
            SELECT %(trace)s, int8send(n), CASE WHEN n > 1 THEN int8send(1) END, 'step ' || n, 'svc' || (n %% 3),
                   to_timestamp(%(t0)s + n / 1000.0), to_timestamp(%(t0)s + n / 1000.0 + 0.5),
                   (%(t0)s::bigint * 1000000 + n * 1000) * 1000, (%(t0)s::bigint * 1000000 + n * 1000 + 500000) * 1000,
                   500000000, 3, jsonb_build_object('step', n, 'gen_ai.prompt', repeat('x', 200)),
                   '{"service.name": "svc"}'
            FROM generate_series(1, %(n)s) AS n""", {"trace": TRACE, "n": spans, "t0": day_ago})
        if conn.execute("SELECT observatory_uses_timescaledb()").fetchone() == (False,):
            conn.execute("ANALYZE spans")


def peak_rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return 0.0


async def with_health_probe(base: str, key: str, read: Any) -> dict[str, Any]:
    """read(http) -> its figures, while /health is asked every 50 ms; adds health_during."""
    health: list[float] = []
    stop = asyncio.Event()
    async with aiohttp.ClientSession(headers={"Authorization": f"Bearer {key}"}, timeout=aiohttp.ClientTimeout(total=600)) as http:
        async def probe_health() -> None:
            while not stop.is_set():
                started = time.perf_counter()
                async with http.get(base + "/api/v1/health") as response:
                    await response.read()
                health.append(time.perf_counter() - started)
                await asyncio.sleep(0.05)

        prober = asyncio.create_task(probe_health())
        try:
            figures = await read(http)
        finally:
            stop.set()
            await prober
    return {**figures, "health_during": summary(health)}


async def read_all(base: str, key: str) -> dict[str, Any]:
    async def pages_of(http: aiohttp.ClientSession) -> dict[str, Any]:
        pages, sizes, spans = [], [], 0
        started_all = time.perf_counter()
        cursor = None
        while True:
            started = time.perf_counter()
            async with http.get(f"{base}/api/v1/traces/{TRACE.hex()}", params={"cursor": cursor} if cursor else None) as response:
                body = await response.read()
                if response.status != 200:
                    raise RuntimeError(f"{response.status} {body[:300]!r}")
            pages.append(time.perf_counter() - started)
            sizes.append(len(body))
            answer = json.loads(body)
            spans += len(answer["spans"])
            cursor = answer.get("next_cursor")
            if cursor is None:
                break
        return {
            "pages": len(pages), "spans_read": spans, "seconds_all_pages": round(time.perf_counter() - started_all, 2),
            "page": summary(pages), "largest_answer_mb": round(max(sizes) / 2**20, 2),
        }

    return await with_health_probe(base, key, pages_of)


async def read_tempo(base: str, key: str) -> dict[str, Any]:
    """The trace once through the Tempo endpoint (/api/traces/{id}, OTLP protobuf), as Grafana reads it."""
    async def once(http: aiohttp.ClientSession) -> dict[str, Any]:
        started = time.perf_counter()
        async with http.get(f"{base}/api/traces/{TRACE.hex()}", headers={"Accept": "application/protobuf"}) as response:
            body = await response.read()
            if response.status != 200:
                raise RuntimeError(f"{response.status} {body[:300]!r}")
            truncated = response.headers.get("X-Observatory-Truncated")
        return {"seconds": round(time.perf_counter() - started, 2), "answer_mb": round(len(body) / 2**20, 2), "truncated": truncated}

    return await with_health_probe(base, key, once)


async def main_async(args: argparse.Namespace) -> dict[str, Any]:
    admin = psycopg.conninfo.make_conninfo(args.admin_dsn, dbname=args.database)
    readonly = psycopg.conninfo.make_conninfo(args.admin_dsn, dbname=args.database, user="observatory_readonly")
    ensure_trace(admin, args.spans)
    key = new_key()
    result: dict[str, Any] = {"spans": args.spans}
    roots = [("current", ROOT)]
    if args.baseline:
        roots.insert(0, ("baseline", checkout(args.baseline)))
    try:
        for name, root in roots:
            async with api_process(readonly, key, cache_ttl=args.cache_ttl, root=root, extra={"QUERY_TIMEOUT": "300"}) as base:
                result[name] = await (read_tempo if args.tempo else read_all)(base, key)
                result[name]["api_peak_rss_mb"] = round(peak_rss_mb(PROCESSES[base].pid), 1)
    finally:
        for name, root in roots:
            if name == "baseline":
                shutil.rmtree(root, ignore_errors=True)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--admin-dsn", default="postgresql://postgres@127.0.0.1:5432/postgres")
    parser.add_argument("--database", default="obs_bench_api")
    parser.add_argument("--spans", type=int, default=300_000)
    parser.add_argument("--baseline", help="a commit whose API reads the same trace in the same run")
    parser.add_argument("--cache-ttl", type=int, default=30,
                        help="API_CACHE_TTL (30, the default, lets later pages take the trace's summary from the cache; 0 recomputes it)")
    parser.add_argument("--tempo", action="store_true", help="read the trace once through /api/traces/{id} (OTLP protobuf) instead of paging /api/v1")
    print(json.dumps(asyncio.run(main_async(parser.parse_args())), indent=2))


if __name__ == "__main__":
    main()
