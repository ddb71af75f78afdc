"""Where the time of a 7-day usage answer goes: the totals from each rollup tier, and the
latency percentiles at several sample sizes, each timed alone on one connection.

    .venv/bin/python -m bench.api.usage_parts --database obs_bench_api

Runs the API's own statements (api/usage.py) with the API's session settings, REPEAT times
each, and prints the median and maximum. Ratios: per-minute over hourly tier (totals), and
each sample size over the exact percentiles.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import time
from datetime import timedelta
from typing import Any

import psycopg

from api.app import WORK_MEM
from api.usage import TIERS, _percentiles, _totals_statement
from api.window import NANOS, Window

DAY = 86400 * NANOS


async def timed(repeat: int, run: Any) -> dict[str, float]:
    samples = []
    for _ in range(repeat):
        started = time.perf_counter()
        await run()
        samples.append(time.perf_counter() - started)
    return {"median_ms": round(statistics.median(samples) * 1e3, 1), "max_ms": round(max(samples) * 1e3, 1)}


async def main_async(args: argparse.Namespace) -> dict[str, Any]:
    dsn = psycopg.conninfo.make_conninfo(args.admin_dsn, dbname=args.database, user="observatory_readonly")
    async with await psycopg.AsyncConnection.connect(dsn, autocommit=True) as conn:
        await conn.execute("SET jit = off")
        await conn.execute("SET max_parallel_workers_per_gather = 0")  # as the API's sessions
        await conn.execute(f"SET work_mem = '{WORK_MEM}'")
        cur = await conn.execute("SELECT max(start_time_unix_nano), count(*) FROM spans")
        last, total = await cur.fetchone()  # type: ignore[misc]
        span = Window(last - 7 * DAY, last)
        bucket, groups = timedelta(hours=1), ("model",)
        result: dict[str, Any] = {"spans": total}

        async def totals(tiers: list[tuple[str, int]]) -> None:
            statement, values, _ = _totals_statement({}, span, bucket, groups, tiers)
            await (await conn.execute(statement, values)).fetchall()

        result["totals_1m_tier"] = await timed(args.repeat, lambda: totals([TIERS["1m"]]))
        result["totals_1h_tier"] = await timed(args.repeat, lambda: totals([TIERS["1h"], TIERS["1m"]]))
        for every in (200, 100, 50, 1):  # a time sample of 1/every of each bucket; 1 = exact
            result[f"percentiles_sample_{1 / every:g}"] = await timed(
                args.repeat if every > 1 else 1, lambda e=every: _percentiles(conn, {}, span, bucket, groups, e),
            )
    result["ratio_totals_1m_over_1h"] = round(result["totals_1m_tier"]["median_ms"] / result["totals_1h_tier"]["median_ms"], 1)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--admin-dsn", default="postgresql://postgres@127.0.0.1:5432/postgres")
    parser.add_argument("--database", default="obs_bench_api")
    parser.add_argument("--repeat", type=int, default=7)
    print(json.dumps(asyncio.run(main_async(parser.parse_args())), indent=2))


if __name__ == "__main__":
    main()
