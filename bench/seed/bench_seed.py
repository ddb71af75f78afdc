"""How fast `observatory seed --via db` fills a database, against raw COPY of the same rows.

Runs in a database of its own (created, migrated, dropped). Measures, for one plan of
--count spans:

  build     building the OTLP requests (cli.loadgen), spans/s, also per CPU-second
  decode    build + storage.decode.request_rows, spans/s
  seed jN   the whole `seed --via db` path with N worker processes (build, decode,
            SpanWriter: COPY into staging, INSERT … ON CONFLICT into the partitioned
            tables), into emptied tables each time, spans/s
  raw COPY  the same, already decoded, span rows COPYed (binary) into an unindexed
            table of the staging shape: the ceiling for this machine right now

and prints each with its ratio to raw COPY measured in the same run, since the machine
may be shared and absolute figures move with its load.

    .venv/bin/python bench/seed/bench_seed.py --count 50000 --jobs 1 2
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import subprocess
import time
import uuid
from datetime import datetime, timezone

import psycopg
from psycopg import sql

from cli.loadgen import Profile, TraceFactory, plan
from cli.loadgen.database import write_all
from storage.decode import SPAN_COLUMNS, SPAN_TYPES, Rows, request_rows
from storage.migrations import Migrator

SERVER = "postgresql://postgres@127.0.0.1:5432/postgres"


def timed(label: str, spans: int, work) -> tuple[str, float]:  # type: ignore[no-untyped-def]
    started = time.perf_counter()
    work()
    seconds = time.perf_counter() - started
    return label, spans / seconds


def empty_tables(dsn: str) -> None:
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("TRUNCATE spans, span_events, span_links")


async def raw_copy(dsn: str, rows: Rows) -> None:
    async with await psycopg.AsyncConnection.connect(dsn, autocommit=True) as conn:
        columns = ", ".join(f"{c} {t}" for c, t in zip(SPAN_COLUMNS, SPAN_TYPES))
        await conn.execute(f"DROP TABLE IF EXISTS raw_spans; CREATE UNLOGGED TABLE raw_spans ({columns})")
        async with conn.cursor() as cur:
            async with cur.copy(f"COPY raw_spans ({', '.join(SPAN_COLUMNS)}) FROM STDIN (FORMAT BINARY)") as copy:
                copy.set_types(list(SPAN_TYPES))
                for row in rows.spans:
                    await copy.write_row(row)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--count", type=int, default=50_000)
    parser.add_argument("--jobs", type=int, nargs="+", default=[1, 2])
    args = parser.parse_args()

    name = f"bench_seed_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(SERVER, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    dsn = psycopg.conninfo.make_conninfo(SERVER, dbname=name)
    try:
        with psycopg.connect(dsn) as conn, Migrator(conn) as migrator:
            migrator.up()
        profile = Profile(count=args.count, end_ns=int(time.time()) // 3600 * 3600 * 10**9, seed=1)
        sizes = plan(profile)
        cpu_started = time.process_time()
        results = [timed("build", args.count, lambda: list(TraceFactory(profile).batches(sizes)))]
        build_cpu = args.count / (time.process_time() - cpu_started)
        rows = Rows()

        def decode_all() -> None:
            for batch in TraceFactory(profile).batches(sizes):
                rows.extend(request_rows(batch.request))

        results.append(timed("build + decode", args.count, decode_all))
        for jobs in args.jobs:
            empty_tables(dsn)
            results.append(timed(f"seed --via db --jobs {jobs}", args.count, lambda j=jobs: write_all(profile, sizes, dsn, j)))
        results.append(timed("raw COPY (ceiling)", args.count, lambda: asyncio.run(raw_copy(dsn, rows))))
    finally:
        with psycopg.connect(SERVER, autocommit=True) as conn:
            conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))

    ceiling = results[-1][1]
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip()
    load = os.getloadavg()[0]
    print(f"{datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC, commit {commit}, {platform.node()}, "
          f"{os.cpu_count()} cores, load average {load:.1f} at the end, {args.count:,} spans")
    print("| step | spans/s | ratio to raw COPY |\n|---|---:|---:|")
    for label, rate in results:
        print(f"| {label} | {rate:,.0f} | {rate / ceiling:.2f} |")
    print(f"\nbuild on CPU time (less sensitive to the machine's load): {build_cpu:,.0f} spans per CPU-second")


if __name__ == "__main__":
    main()
