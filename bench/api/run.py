"""Latency of the query API over a seeded database, beside the same queries run directly.

    .venv/bin/python -m bench.api.run --database obs_bench_api

Starts the real API process (python -m api) against the database, three times: with the
answer cache off (every usage answer computed), with it on, and with the cache off and
API_ROLLUP_TIERS=1m (no hourly tier: the usage figures before span_rollups_1h, as a ratio
measured in the same run). For each scenario it
sends requests one at a time and records p50/p99; it then runs the scenario's SQL through
the API's own query functions on a direct read-only connection, so the ratio API / SQL
shows what HTTP, auth, the rate limit and JSON cost on top of the database.

Scenarios (the issue's targets):
- trace by id (p99 <= 20 ms): random stored traces of five spans.
- span search over 24 h (p99 <= 200 ms): a random 24 h window of the 7 days, one service,
  LLM client spans slower than 1 s, first page of 100.
- usage over 7 days (p99 <= 300 ms): bucket 1 h, grouped by model, percentiles included.
- trace search over 24 h (p99 <= 200 ms): one service, traces with an error, first page of 50;
  and one model, first page of 50.

With --baseline COMMIT the same requests go to the API of COMMIT (unpacked with git archive)
and to this tree's, alternately, against the same database: the ratio is measured in one run.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from contextlib import asynccontextmanager
from datetime import timedelta
from pathlib import Path
from typing import Any, AsyncIterator

import aiohttp
import psycopg
from psycopg_pool import AsyncConnectionPool

from api import queries
from api.keys import entry_for, new_key
from api.usage import usage
from api.window import NANOS, Window

ROOT = Path(__file__).resolve().parents[2]
DAY = 86400 * NANOS
MODELS = ("gpt-4o", "gpt-4o-mini", "claude-3-5-sonnet", "claude-3-haiku", "gemini-1.5-pro", "llama-3-70b")
SERVICES = ("checkout", "search", "support-bot", "recommender", "billing", "onboarding", "analytics", "gateway")


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))]


def summary(samples: list[float]) -> dict[str, float]:
    return {"n": len(samples), "p50_ms": round(percentile(samples, 0.5) * 1e3, 2),
            "p99_ms": round(percentile(samples, 0.99) * 1e3, 2), "mean_ms": round(statistics.fmean(samples) * 1e3, 2),
            "max_ms": round(max(samples) * 1e3, 2)}


PROCESSES: dict[str, subprocess.Popen[bytes]] = {}  # base URL -> the API process serving it


def free_port() -> int:
    import socket
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@asynccontextmanager
async def api_process(
    readonly_dsn: str, key: str, cache_ttl: int, tiers: str = "1m,1h", root: Path = ROOT, extra: dict[str, str] | None = None,
) -> AsyncIterator[str]:
    port, metrics_port = free_port(), free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("API_")}
    env.update({
        "DATABASE_READONLY_URL": readonly_dsn, "API_KEYS": entry_for("bench", "*", key), "API_PORT": str(port),
        "API_METRICS_PORT": str(metrics_port), "API_HOST": "127.0.0.1", "METRICS_HOST": "127.0.0.1",
        "RATE_LIMIT_REQUESTS": "1000000000", "API_CACHE_TTL": str(cache_ttl), "REDIS_KEY_PREFIX": f"bench-api:{port}:",
        **(extra or {}), "LOG_LEVEL": "warning", "API_ROLLUP_TIERS": tiers, "OBSERVATORY_ENV_FILE": "/nonexistent", "PYTHONPATH": str(root),
    })
    proc = subprocess.Popen([sys.executable, "-m", "api"], env=env, cwd=root)
    PROCESSES[f"http://127.0.0.1:{port}"] = proc
    try:
        async with aiohttp.ClientSession() as session:
            for _ in range(200):
                try:
                    async with session.get(f"http://127.0.0.1:{metrics_port}/ready") as response:
                        if response.status == 200:
                            break
                except aiohttp.ClientError:
                    pass
                await asyncio.sleep(0.1)
        yield f"http://127.0.0.1:{port}"
    finally:
        proc.terminate()
        proc.wait(30)


async def timed(count: int, call: Callable[[int], Awaitable[None]]) -> list[float]:
    await call(0)  # warm: connections, plans, caches
    samples = []
    for n in range(count):
        started = time.perf_counter()
        await call(n)
        samples.append(time.perf_counter() - started)
    return samples


class Scenarios:
    def __init__(self, trace_ids: list[str], first_ns: int, last_ns: int, seed: int) -> None:
        self.trace_ids = trace_ids
        self.first_ns, self.last_ns = first_ns, last_ns
        self.rng = random.Random(seed)
        self.windows = [self._day() for _ in range(1000)]
        self.services = [self.rng.choice(SERVICES) for _ in range(1000)]

    def _day(self) -> tuple[int, int]:
        start = self.rng.randrange(self.first_ns, max(self.first_ns + 1, self.last_ns - DAY))
        return start, start + DAY

    def search_filters(self, n: int) -> dict[str, Any]:
        start, end = self.windows[n % 1000]
        return {"start": str(start), "end": str(end), "service": self.services[n % 1000], "kind": "client",
                "min_duration_ms": "1000", "limit": "100"}

    def trace_filters(self, n: int) -> dict[str, str]:
        start, end = self.windows[n % 1000]
        return {"start": str(start), "end": str(end), "service": self.services[n % 1000], "status": "error", "limit": "50"}

    def trace_model_filters(self, n: int) -> dict[str, str]:
        start, end = self.windows[n % 1000]
        return {"start": str(start), "end": str(end), "model": MODELS[n % len(MODELS)], "limit": "50"}

    def usage_params(self) -> dict[str, str]:
        return {"start": str(self.last_ns - 7 * DAY), "end": str(self.last_ns), "bucket": "1h", "group_by": "model"}


async def http_runs(
    base: str, key: str, s: Scenarios, counts: dict[str, int], failures: dict[str, int] | None = None,
) -> dict[str, list[float]]:
    """Latencies by scenario; answers other than 200 are counted in `failures` by route (a
    503 at the statement timeout is a result too), and timed like the others."""
    failures = {} if failures is None else failures
    headers = {"Authorization": f"Bearer {key}"}
    async with aiohttp.ClientSession(headers=headers) as http:
        async def get(path: str, params: dict[str, str] | None = None) -> None:
            async with http.get(base + path, params=params) as response:
                body = await response.read()
                if response.status != 200:
                    if not failures:
                        print(f"first failure: {path} {params}: {response.status} {body[:300]!r}", file=sys.stderr)
                    failures[path.split("/")[3]] = failures.get(path.split("/")[3], 0) + 1

        return {
            "trace_by_id": await timed(counts["trace"], lambda n: get(f"/api/v1/traces/{s.trace_ids[n % len(s.trace_ids)]}")),
            "span_search_24h": await timed(counts["search"], lambda n: get("/api/v1/spans", s.search_filters(n))),
            "usage_7d": await timed(counts["usage"], lambda n: get("/api/v1/metrics", s.usage_params())),
            "trace_search_24h": await timed(counts["search"], lambda n: get("/api/v1/traces", s.trace_filters(n))),
            "trace_search_24h_model": await timed(counts["search"], lambda n: get("/api/v1/traces", s.trace_model_filters(n))),
        }


async def sql_runs(readonly_dsn: str, s: Scenarios, counts: dict[str, int], sample_spans: int) -> dict[str, list[float]]:
    from api.params import parse
    from api.specs import SPAN_SEARCH, TRACE_SEARCH, USAGE
    from api.trace_search import search_traces

    async with await psycopg.AsyncConnection.connect(readonly_dsn, autocommit=True) as conn:
        async def trace(n: int) -> None:
            trace_id = bytes.fromhex(s.trace_ids[n % len(s.trace_ids)])
            await queries.trace(conn, trace_id)

        async def traces(n: int) -> None:
            values = parse(TRACE_SEARCH, {k: [v] for k, v in s.trace_filters(n).items()})
            await search_traces(conn, values, Window(values["start"], values["end"]), None, 50)

        async def search(n: int) -> None:
            values = parse(SPAN_SEARCH, {k: [v] for k, v in s.search_filters(n).items()}, attrs=True)
            await queries.search_spans(conn, values, Window(values["start"], values["end"]), None, 100)

        async with AsyncConnectionPool(readonly_dsn, min_size=2, max_size=2, kwargs={"autocommit": True}) as pool:
            async def usage_7d(n: int) -> None:
                values = parse(USAGE, {k: [v] for k, v in s.usage_params().items()})
                await usage(pool, values, Window(values["start"], values["end"]), timedelta(hours=1), ("model",), sample_spans)

            return {
                "trace_by_id": await timed(counts["trace"], trace),
                "span_search_24h": await timed(counts["search"], search),
                "usage_7d": await timed(counts["usage"], usage_7d),
                "trace_search_24h": await timed(counts["search"], traces),
            }


def sample_traces(admin_dsn: str) -> tuple[list[str], int, int, int]:
    with psycopg.connect(admin_dsn) as conn:
        # Not TABLESAMPLE: TimescaleDB ignores it on compressed chunks (it would return the first chunk's ids).
        ids = [r[0].hex() for r in conn.execute(
            "SELECT trace_id FROM spans WHERE parent_span_id IS NULL ORDER BY hashtext(encode(span_id, 'hex')) LIMIT 500")]
        first, last, total = conn.execute(
            "SELECT min(start_time_unix_nano), max(start_time_unix_nano), (SELECT sum(span_count) FROM span_rollups_1m) FROM spans"
        ).fetchone()
    return ids, first, last, int(total)


async def main_async(args: argparse.Namespace) -> dict[str, Any]:
    admin = psycopg.conninfo.make_conninfo(args.admin_dsn, dbname=args.database)
    readonly = psycopg.conninfo.make_conninfo(args.admin_dsn, dbname=args.database, user="observatory_readonly")
    trace_ids, first_ns, last_ns, total = sample_traces(admin)
    counts = {"trace": args.trace_requests, "search": args.search_requests, "usage": args.usage_requests}
    scenarios = Scenarios(trace_ids, first_ns, last_ns, args.seed)
    key = new_key()
    if args.baseline:
        return await beside_baseline(args, readonly, key, scenarios, counts, total)
    async with api_process(readonly, key, cache_ttl=0) as base:
        api = await http_runs(base, key, scenarios, counts)
    sql = await sql_runs(readonly, scenarios, counts, args.sample_spans)
    async with api_process(readonly, key, cache_ttl=60) as base:
        cached = await http_runs(base, key, scenarios, {"trace": 1, "search": 1, "usage": args.usage_requests})
    async with api_process(readonly, key, cache_ttl=0, tiers="1m") as base:
        minutes = await http_runs(base, key, scenarios, {"trace": 1, "search": 1, "usage": args.usage_requests})
    result: dict[str, Any] = {"spans": total, "scenarios": {}}
    for name in sql:
        a, q = summary(api[name]), summary(sql[name])
        result["scenarios"][name] = {"api": a, "sql": q, "api_over_sql_p50": round(a["p50_ms"] / q["p50_ms"], 2)}
    usage_7d = result["scenarios"]["usage_7d"]
    usage_7d["api_cached"] = summary(cached["usage_7d"])
    usage_7d["api_minute_tier_only"] = summary(minutes["usage_7d"])
    for q in ("p50", "p99"):
        usage_7d[f"minute_tier_over_hourly_tier_{q}"] = round(usage_7d["api_minute_tier_only"][f"{q}_ms"] / usage_7d["api"][f"{q}_ms"], 2)
    return result


def checkout(commit: str) -> Path:
    """The tree of `commit`, unpacked beside this one (the API process runs from it)."""
    folder = Path(tempfile.mkdtemp(prefix=f"bench-api-{commit[:12]}-"))
    archive = subprocess.run(["git", "-C", str(ROOT), "archive", commit], check=True, capture_output=True).stdout
    subprocess.run(["tar", "-x", "-C", str(folder)], input=archive, check=True)
    return folder


async def beside_baseline(
    args: argparse.Namespace, readonly: str, key: str, scenarios: Scenarios, counts: dict[str, int], total: int,
) -> dict[str, Any]:
    """The same requests to this tree's API and to the baseline commit's, one process after
    the other (baseline, this, baseline, this: the machine's drift hits both alike)."""
    baseline_root = checkout(args.baseline)
    baseline_db = psycopg.conninfo.make_conninfo(readonly, dbname=args.baseline_database or args.database)
    runs: dict[str, list[dict[str, list[float]]]] = {"baseline": [], "current": []}
    failures: dict[str, dict[str, int]] = {"baseline": {}, "current": {}}
    try:
        for _ in range(args.rounds):
            for name, root, dsn in (("baseline", baseline_root, baseline_db), ("current", ROOT, readonly)):
                async with api_process(dsn, key, cache_ttl=0, root=root) as base:
                    runs[name].append(await http_runs(base, key, scenarios, counts, failures[name]))
    finally:
        shutil.rmtree(baseline_root, ignore_errors=True)
    result: dict[str, Any] = {
        "spans": total, "baseline": args.baseline, "baseline_database": args.baseline_database or args.database,
        "rounds": args.rounds, "non_200_answers": failures, "scenarios": {},
    }
    for scenario in runs["current"][0]:
        now = summary([t for run in runs["current"] for t in run[scenario]])
        before = summary([t for run in runs["baseline"] for t in run[scenario]])
        result["scenarios"][scenario] = {
            "current": now, "baseline": before,
            "baseline_over_current_p50": round(before["p50_ms"] / now["p50_ms"], 2),
            "baseline_over_current_p99": round(before["p99_ms"] / now["p99_ms"], 2),
        }
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--admin-dsn", default="postgresql://postgres@127.0.0.1:5432/postgres")
    parser.add_argument("--database", default="obs_bench_api")
    parser.add_argument("--trace-requests", type=int, default=300)
    parser.add_argument("--search-requests", type=int, default=100)
    parser.add_argument("--usage-requests", type=int, default=30)
    parser.add_argument("--sample-spans", type=int, default=100_000, help="API_PERCENTILE_SAMPLE_SPANS for the SQL runs")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--baseline", help="a commit whose API answers the same requests in the same run (API only, no SQL runs)")
    parser.add_argument("--rounds", type=int, default=1, help="with --baseline: alternate the two APIs this many times")
    parser.add_argument("--baseline-database", help="with --baseline: the database the baseline API reads (default: --database), "
                        "e.g. one seeded with the baseline's migrations")
    result = asyncio.run(main_async(parser.parse_args()))
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
