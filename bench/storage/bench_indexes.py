"""What each index costs at ingest and buys at query time, measured in one run.

    .venv/bin/python -m bench.storage.bench_indexes --spans 100000

Ingest: the same decoded rows COPYed into an emptied `spans` with (a) the primary key only,
(b) + the migration's btree indexes, (c) + a GIN jsonb_path_ops index on attributes, the
three alternated over --rounds; median rates and their ratios to (a). Queries: the API's filters over spans spread
across the last 24 hours, median of 7 runs, with (b) and then with (c).
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
import uuid

import psycopg
from psycopg import sql

from bench.storage.bench_writer import copy_spans, make_bodies
from storage.decode import decode
from storage.migrations import Migrator
from storage.writer import register_copy_dumpers

BTREE = ("spans_time", "spans_service_time", "spans_model_time", "spans_error_time")
BTREE_DDL = {
    "spans_time": "CREATE INDEX spans_time ON spans (start_time DESC)",
    "spans_service_time": "CREATE INDEX spans_service_time ON spans (service_name, start_time DESC)",
    "spans_model_time": "CREATE INDEX spans_model_time ON spans ((coalesce(llm_request_model, llm_response_model)), "
                        "start_time DESC) WHERE coalesce(llm_request_model, llm_response_model) IS NOT NULL",
    "spans_error_time": "CREATE INDEX spans_error_time ON spans (start_time DESC) WHERE status_code = 2",
}
GIN = "CREATE INDEX spans_attributes ON spans USING gin (attributes jsonb_path_ops)"
RECENT = "start_time > now() - interval '1 hour'"
QUERIES = {
    "trace by id": "SELECT * FROM spans WHERE trace_id = %(trace)s",
    "service + last hour": f"SELECT * FROM spans WHERE service_name = 'svc-3' AND {RECENT} ORDER BY start_time DESC LIMIT 100",
    "model + last hour": "SELECT * FROM spans WHERE coalesce(llm_request_model, llm_response_model) = 'gpt-4o-mini' "
                         f"AND {RECENT} ORDER BY start_time DESC LIMIT 100",
    "errors + last hour": f"SELECT * FROM spans WHERE status_code = 2 AND {RECENT} ORDER BY start_time DESC LIMIT 100",
    "attribute, 1 in 1000, 24 h": "SELECT * FROM spans WHERE attributes @> '{\"user.id\": \"user-7\"}' "
                                  "ORDER BY start_time DESC LIMIT 100",
    "attribute, no match, last hour": f"SELECT * FROM spans WHERE attributes @> '{{\"user.id\": \"nobody\"}}' AND {RECENT} "
                                      "ORDER BY start_time DESC LIMIT 100",
    "attribute, no match, 24 h": "SELECT * FROM spans WHERE attributes @> '{\"user.id\": \"nobody\"}' "
                                 "ORDER BY start_time DESC LIMIT 100",
}


def time_queries(conn: psycopg.Connection, trace: bytes) -> dict[str, float]:
    conn.execute("ANALYZE spans")
    results = {}
    for name, query in QUERIES.items():
        runs = []
        for _ in range(7):
            began = time.perf_counter()
            conn.execute(query, {"trace": trace}).fetchall()
            runs.append(time.perf_counter() - began)
        results[name] = statistics.median(runs) * 1000
    conn.commit()
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--admin-dsn", default="postgresql://postgres@127.0.0.1:5432/postgres")
    parser.add_argument("--spans", type=int, default=100_000)
    parser.add_argument("--rounds", type=int, default=3, help="COPY runs per index configuration, alternated")
    args = parser.parse_args()
    name = f"obs_bench_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(args.admin_dsn, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    dsn = psycopg.conninfo.make_conninfo(args.admin_dsn, dbname=name)
    try:
        with psycopg.connect(dsn) as conn, Migrator(conn) as migrator:
            migrator.up()
        rows = [r for body in make_bodies(args.spans, 100, spread_s=86_400) for r in decode(body).spans]
        configs = {
            "pk only": [],
            "pk + 4 btree": list(BTREE_DDL.values()),
            "pk + 4 btree + GIN jsonb_path_ops": [*BTREE_DDL.values(), GIN],
        }
        samples: dict[str, list[float]] = {label: [] for label in configs}
        with psycopg.connect(dsn) as conn:
            register_copy_dumpers(conn)
            conn.execute("SELECT observatory_ensure_partitions(current_date - 2, current_date + 1)")
            for _round in range(args.rounds):  # configurations alternate, so load changes hit all alike
                for label, ddl in configs.items():
                    conn.execute("TRUNCATE spans")
                    for index in (*BTREE, "spans_attributes"):
                        conn.execute(sql.SQL("DROP INDEX IF EXISTS {}").format(sql.Identifier(index)))
                    for statement in ddl:
                        conn.execute(statement)
                    conn.commit()
                    samples[label].append(len(rows) / copy_spans(conn, rows))
            gin_q = time_queries(conn, rows[len(rows) // 2][0])
            conn.execute("DROP INDEX spans_attributes")
            conn.commit()
            btree_q = time_queries(conn, rows[len(rows) // 2][0])
        rates = {label: statistics.median(values) for label, values in samples.items()}
        base = rates["pk only"]
        print(f"spans={len(rows)} spread over 24 h; raw binary COPY into spans (daily partitions), "
              f"median of {args.rounds} alternated rounds; load {os.getloadavg()[0]:.1f}")
        for label, rate in rates.items():
            print(f"  ingest {label:<36} {rate:>9,.0f} rows/s  {rate / base:>5.0%} of pk only")
        print(f"  {'query (median of 7, ms)':<36} {'btree':>9} {'+ GIN':>9}")
        for q in QUERIES:
            print(f"  {q:<36} {btree_q[q]:>9.1f} {gin_q[q]:>9.1f}")
    finally:
        with psycopg.connect(args.admin_dsn, autocommit=True) as conn:
            conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


if __name__ == "__main__":
    main()
