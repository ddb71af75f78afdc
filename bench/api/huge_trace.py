"""One trace of --spans spans (a root and its children) read through the API: every page of
GET /traces/{id}, the answer sizes, the API's peak memory, and /health answered meanwhile.

    .venv/bin/python -m bench.api.huge_trace --database obs_bench_api --spans 300000

Writes the trace into the database first when it is not there (trace id b1b1…, spans one
millisecond apart starting a day ago). With --baseline COMMIT the same is done against that
commit's API (its answer is the whole trace in one response). Prints JSON.
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


async def read_all(base: str, key: str) -> dict[str, Any]:
    headers = {"Authorization": f"Bearer {key}"}
    pages, sizes, spans = [], [], 0
    health: list[float] = []
    stop = asyncio.Event()
    async with aiohttp.ClientSession(headers=headers, timeout=aiohttp.ClientTimeout(total=600)) as http:
        async def probe_health() -> None:
            while not stop.is_set():
                started = time.perf_counter()
                async with http.get(base + "/api/v1/health") as response:
                    await response.read()
                health.append(time.perf_counter() - started)
                await asyncio.sleep(0.05)

        prober = asyncio.create_task(probe_health())
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
        total = time.perf_counter() - started_all
        stop.set()
        await prober
    return {
        "pages": len(pages), "spans_read": spans, "seconds_all_pages": round(total, 2), "page": summary(pages),
        "largest_answer_mb": round(max(sizes) / 2**20, 2), "health_during": summary(health),
    }


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
            async with api_process(readonly, key, cache_ttl=0, root=root, extra={"QUERY_TIMEOUT": "300"}) as base:
                result[name] = await read_all(base, key)
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
    print(json.dumps(asyncio.run(main_async(parser.parse_args())), indent=2))


if __name__ == "__main__":
    main()
