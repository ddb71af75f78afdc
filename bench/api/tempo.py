"""Latency of the Tempo-compatible endpoints (api/tempo.py) beside the JSON API's own trace
read, in the same run (the machine is shared: the ratio matters more than the figures).

    .venv/bin/python -m bench.api.tempo --spans 200000

Creates a database, fills it with `observatory seed --via db` (a day of generated LLM
traffic), starts the real API process, and sends requests one at a time: a trace by id as
OTLP protobuf (/api/traces/{id}) and as the JSON API's tree (/api/v1/traces/{id}), and the
searches Grafana's Explore sends (/api/search with TraceQL over the last hour and the whole
day, tag names and values). Prints p50 / p99 in ms; drops the database afterwards.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import subprocess
import sys
import time

import aiohttp
import psycopg

from api.keys import new_key
from bench.api.run import ROOT, api_process, summary, timed
from tests.conftest import create_database, drop_database


def seed(database_dsn: str, spans: int) -> None:
    env = {"DATABASE_URL": database_dsn, "PYTHONPATH": str(ROOT), "OBSERVATORY_ENV_FILE": "/nonexistent", "PATH": "/usr/bin:/bin"}
    end = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() - 60))
    subprocess.run([sys.executable, "-m", "cli", "seed", "--count", str(spans), "--via", "db", "--days", "1", "--end", end,
                    "--services", "8", "--quiet"], env=env, cwd=ROOT, check=True)


async def run(base: str, key: str, trace_ids: list[str], service: str, count: int) -> dict[str, dict[str, float]]:
    now = int(time.time())
    hour = {"start": str(now - 3600), "end": str(now)}
    day = {"start": str(now - 86400), "end": str(now)}
    headers = {"Authorization": f"Bearer {key}"}
    async with aiohttp.ClientSession(headers=headers) as session:
        async def get(path: str, params: dict[str, str] | None = None, accept: str = "application/json") -> None:
            async with session.get(base + path, params=params, headers={"Accept": accept}) as answer:
                assert answer.status == 200, (path, answer.status, await answer.text())
                await answer.read()

        searches = {
            "search {} 1h": {"q": "{}", **hour},
            "search status=error 24h": {"q": "{ status = error }", **day},
            "search service && duration>2s 24h": {"q": f'{{ resource.service.name = "{service}" && duration > 2s }}', **day},
            "search model attr 24h": {"q": '{ span.gen_ai.request.model = "gpt-4o-mini" }', **day},
        }
        results = {
            "trace json /api/v1/traces/{id}": await timed(count, lambda n: get(f"/api/v1/traces/{trace_ids[n % len(trace_ids)]}")),
            "trace otlp /api/traces/{id}": await timed(count, lambda n: get(f"/api/traces/{trace_ids[n % len(trace_ids)]}", accept="application/protobuf")),
        }
        for name, params in searches.items():
            results[name] = await timed(max(5, count // 4), lambda n, p=params: get("/api/search", {**p, "limit": "20"}))
        results["tags 24h"] = await timed(max(5, count // 4), lambda n: get("/api/v2/search/tags", day))
        results["tag values service 24h"] = await timed(max(5, count // 4), lambda n: get("/api/v2/search/tag/resource.service.name/values", day))
    return {name: summary(samples) for name, samples in results.items()}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--spans", type=int, default=200_000)
    parser.add_argument("--requests", type=int, default=40)
    args = parser.parse_args()
    database = create_database("obs_bench_tempo")
    try:
        started = time.perf_counter()
        seed(database.admin_dsn, args.spans)
        seeded = time.perf_counter() - started
        with psycopg.connect(database.admin_dsn) as conn:
            conn.execute("ANALYZE")
            trace_ids = [r[0].hex() for r in conn.execute("SELECT DISTINCT trace_id FROM spans TABLESAMPLE SYSTEM (1) LIMIT 200")]
            service = conn.execute("SELECT service_name FROM spans LIMIT 1").fetchone()[0]
        key = new_key()

        async def go() -> dict[str, dict[str, float]]:
            async with api_process(database.readonly_dsn, key, cache_ttl=0) as base:
                return await run(base, key, trace_ids, service, args.requests)

        figures = asyncio.run(go())
        print(json.dumps({"spans": args.spans, "seed_seconds": round(seeded, 1), "ms": figures}, indent=1))
    finally:
        drop_database(database.name)


if __name__ == "__main__":
    main()
