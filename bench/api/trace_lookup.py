"""The SQL of a trace lookup alone (api.queries.trace_page, the API's session settings), over
random traces of a seeded database: separates what the compression settings do from the
API process around them.

    .venv/bin/python -m bench.api.trace_lookup --dsn postgresql://observatory_readonly@127.0.0.1:5433/obs_bench_api

Prints p50 and p99 over --traces lookups (after one warm-up) as JSON.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time

import psycopg

from api import queries
from api.app import WORK_MEM
from bench.api.run import summary


async def main_async(args: argparse.Namespace) -> dict[str, object]:
    async with await psycopg.AsyncConnection.connect(args.dsn, autocommit=True) as conn:
        for setting in ("jit = off", f"work_mem = '{WORK_MEM}'", "max_parallel_workers_per_gather = 0"):
            await conn.execute(f"SET {setting}")
        cur = await conn.execute(
            "SELECT trace_id FROM spans WHERE parent_span_id IS NULL ORDER BY hashtext(encode(span_id, 'hex')) LIMIT %s",
            (args.traces + 1,),
        )
        ids = [bytes(row[0]) for row in await cur.fetchall()]
        result: dict[str, object] = {"dsn": args.dsn.rsplit("/", 1)[-1]}
        # trace: the unbounded read main's API made (one pipeline, every span of the trace).
        for name in ("trace_page", "trace") if args.with_unbounded else ("trace_page",):
            samples = []
            for n, trace_id in enumerate(ids):
                started = time.perf_counter()
                if name == "trace":
                    await queries.trace(conn, trace_id)
                else:
                    assert (await queries.trace_page(conn, trace_id, None, 2000)).summary is not None
                if n:  # the first one warms the connection's caches
                    samples.append(time.perf_counter() - started)
            result[name] = summary(samples)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dsn", required=True)
    parser.add_argument("--traces", type=int, default=100)
    parser.add_argument("--with-unbounded", action="store_true", help="also time api.queries.trace, the read main's API made")
    print(json.dumps(asyncio.run(main_async(parser.parse_args()))))


if __name__ == "__main__":
    main()
