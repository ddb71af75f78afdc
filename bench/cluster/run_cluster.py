"""Scale-out benchmark: the same spans through several Redis layouts in one run, as ratios.

    .venv/bin/python bench/cluster/run_cluster.py --spans 30000

Each layout gets a fresh database and its own private Redis (a redis-server, or a Redis
Cluster of 3 masters made with redis-cli, both without persistence, on free ports), its
collectors and writers as real processes, and the same pre-built LLM traces (cli.loadgen),
sent at full speed over gRPC by --senders concurrent senders shared across the collectors.
Figures per layout: accepted spans/s (first send to last answer), stored spans/s (first send
to last row visible), CPU seconds of each kind of process, an estimate of the rate with one
core per process (one_core_each_spans_per_s, from those CPU costs), and the ratios of both to
the first layout's. --repeat 2 runs the layouts forward, then backward. Layouts (name: Redis, collectors x writers, STREAM_SHARDS, WAIT):

    single-1x1        one redis-server, 1 collector, 1 writer, 1 shard (the default install)
    single-2x2        one redis-server, 2 collectors, 2 writers, 3 shards
    cluster-2x2       3-master cluster, 2 collectors, 2 writers, 3 shards
    cluster-2x2-r     3 masters + 3 replicas, same processes, REDIS_WAIT_REPLICAS=0
    cluster-2x2-wait  3 masters + 3 replicas, same processes, REDIS_WAIT_REPLICAS=1

The machine's cores are shared by every process here (and by anyone else on the machine):
more processes only help while a core is idle, so read the ratios, not the absolute rates.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

import psycopg
from psycopg import sql

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from bench.e2e.run_e2e import PROTOCOLS, _commit  # noqa: E402
from bench.e2e.stack import BenchStack, Service, cpu_seconds, free_port  # noqa: E402
from cli.loadgen import Profile, TraceFactory, plan  # noqa: E402
from cli.loadgen.send import Payload, encode, send_all  # noqa: E402
from tests.infra import PrivateRedis, PrivateRedisCluster  # noqa: E402


@dataclass(frozen=True)
class Layout:
    name: str
    cluster: bool
    replicas: int
    collectors: int
    writers: int
    shards: int
    wait_replicas: int = 0


LAYOUTS = {layout.name: layout for layout in (
    Layout("single-1x1", False, 0, 1, 1, 1),
    Layout("single-2x2", False, 0, 2, 2, 3),
    Layout("cluster-2x2", True, 0, 2, 2, 3),
    Layout("cluster-2x2-r", True, 1, 2, 2, 3),
    Layout("cluster-2x2-wait", True, 1, 2, 2, 3, wait_replicas=1),
)}


class ScaleStack(BenchStack):
    """BenchStack with N collectors and M writers on the Redis it is given."""

    def start_layout(self, layout: Layout) -> None:
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.create_database()
        env = self.base_env()
        env.update({"STREAM_SHARDS": str(layout.shards), "REDIS_WAIT_REPLICAS": str(layout.wait_replicas)})
        self.grpc_ports = []
        for n in range(layout.collectors):
            grpc_port, port = free_port(), free_port()
            self.grpc_ports.append(grpc_port)
            own = {**env, "COLLECTOR_OTLP_GRPC_PORT": str(grpc_port), "COLLECTOR_OTLP_HTTP_PORT": str(free_port()),
                   "COLLECTOR_METRICS_PORT": str(port)}
            self.services[f"collector-{n}"] = Service("collector", own, port, self.workdir / f"collector-{n}.log")
        for n in range(layout.writers):
            port = free_port()
            own = {**env, "STORAGE_METRICS_PORT": str(port), "CONSUMER_NAME": f"bench-writer-{n}"}
            self.services[f"storage-{n}"] = Service("storage", own, port, self.workdir / f"storage-{n}.log")
        self.start_services()

    def stop_layout(self) -> None:
        self.close_poll()
        for service in self.services.values():
            service.stop()
        with psycopg.connect(self.admin_server, autocommit=True) as conn:
            conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(self.database)))


async def throughput(stack: ScaleStack, payloads: list[Payload], senders: int, redis_pids: list[int]) -> dict:
    """Every payload at full speed, the senders divided over the collectors."""
    endpoints = [f"127.0.0.1:{port}" for port in stack.grpc_ports]
    parts = [payloads[i::len(endpoints)] for i in range(len(endpoints))]
    pids = {name: s.proc.pid for name, s in stack.services.items()}
    pids.update({f"redis-{n}": pid for n, pid in enumerate(redis_pids)})
    before = {name: cpu_seconds(pid) for name, pid in pids.items()}
    backends_before = {pid: cpu_seconds(pid) for pid in backends(stack)}
    started = time.perf_counter()
    sent = await asyncio.gather(*(
        send_all(part, PROTOCOLS["grpc"], endpoint, concurrency=max(1, senders // len(endpoints)))
        for part, endpoint in zip(parts, endpoints)
    ))
    acked = time.perf_counter()
    spans = sum(s.spans for s in sent)
    if any(s.failed_spans for s in sent):
        raise RuntimeError(f"spans not accepted: {[s.errors for s in sent]}")
    while await asyncio.to_thread(stack.stored) < spans:
        await asyncio.sleep(0.05)
    visible = time.perf_counter()
    cpu = {name: cpu_seconds(pid) - before[name] for name, pid in pids.items()}
    # The writers connect on their first write: backends of this database that began during
    # the phase count whole (the bench's own polling connection left out).
    poll = stack._poll.info.backend_pid if stack._poll is not None else None
    cpu.update({f"postgres-{pid}": cpu_seconds(pid) - backends_before.get(pid, 0.0)
                for pid in backends(stack) if pid != poll})
    counted = await asyncio.to_thread(stack.counted)
    if counted != spans:
        raise RuntimeError(f"{spans} spans were accepted but {counted} rows are stored")
    by_kind: dict[str, float] = {}
    for name, seconds in cpu.items():
        kind = name.split("-")[0]
        by_kind[kind] = by_kind.get(kind, 0.0) + seconds
    return {
        "accepted_spans_per_s": round(spans / (acked - started)),
        "stored_spans_per_s": round(spans / (visible - started)),
        "seconds": round(visible - started, 2),
        "retries": sum(s.retries for s in sent),
        # CPU seconds over the phase: each kind of service process, this layout's own Redis
        # servers, and the PostgreSQL backends serving this layout's database (the server's
        # shared processes, WAL writer and checkpointer, serve others too and are left out).
        "cpu_s": {kind: round(seconds, 2) for kind, seconds in by_kind.items()},
        "one_core_each_spans_per_s": one_core_each({k: v for k, v in cpu.items() if not k.startswith("postgres")}, spans),
    }


def backends(stack: ScaleStack) -> list[int]:
    """PostgreSQL backends connected to this layout's database now (the writers' connections)."""
    with psycopg.connect(stack.admin_server, autocommit=True) as conn:
        rows = conn.execute("SELECT pid FROM pg_stat_activity WHERE datname = %s AND pid <> pg_backend_pid()",
                            (stack.database,)).fetchall()
    return [pid for (pid,) in rows]


def one_core_each(cpu: dict[str, float], spans: int) -> int:
    """An estimate, not a measurement: the rate if every collector, writer and Redis server had
    a core of its own (and the database kept up). Each process handled about its share of the
    spans at the CPU cost measured here; a tier's capacity is the sum over its processes, and
    the slowest tier bounds the pipeline. Collectors and writers take equal shares (the load is
    split evenly, and the consumer group divides entries); Redis servers are summed likewise."""
    tiers: dict[str, list[float]] = {}
    for name, seconds in cpu.items():
        tiers.setdefault(name.split("-")[0], []).append(seconds)
    capacities = []
    for seconds in tiers.values():
        busy = [s for s in seconds if s > 0.05]  # replicas and idle nodes do not bound the rate
        if busy:
            capacities.append(sum(spans / len(busy) / s for s in busy))
    return round(min(capacities)) if capacities else 0


def run_layout(layout: Layout, payloads: list[Payload], args: argparse.Namespace, workdir: Path) -> dict:
    directory = Path(tempfile.mkdtemp(prefix=f"obs-bench-{layout.name}-"))
    redis_server: PrivateRedis | PrivateRedisCluster
    if layout.cluster:
        redis_server = PrivateRedisCluster(directory, masters=3, replicas_per_master=layout.replicas).start()
        redis_pids = [node.proc.pid for node in redis_server.nodes if node.proc]
    else:
        redis_server = PrivateRedis(directory).start()
        redis_pids = [redis_server.proc.pid] if redis_server.proc else []
    stack = ScaleStack(args.admin_dsn, redis_server.url, workdir / layout.name,
                       extra_env={"MAX_QUEUE_SIZE": "2000000", "ENABLE_PII_DETECTION": "true"})
    try:
        stack.start_layout(layout)
        print(f"{layout.name} ...", file=sys.stderr)
        result = asyncio.run(throughput(stack, payloads, args.senders, redis_pids))
    finally:
        stack.stop_layout()
        redis_server.stop()
    return {"layout": layout.name, "collectors": layout.collectors, "writers": layout.writers, "shards": layout.shards,
            "redis": ("cluster 3 masters" + (f" + {3 * layout.replicas} replicas" if layout.replicas else "")
                      if layout.cluster else "one redis-server"),
            "wait_replicas": layout.wait_replicas, **result}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--spans", type=int, default=30_000, help="spans sent through each layout")
    parser.add_argument("--per-request", type=int, default=100)
    parser.add_argument("--senders", type=int, default=8, help="concurrent senders, shared over the collectors")
    parser.add_argument("--layouts", default=",".join(LAYOUTS), help=f"comma-separated, the first is the baseline: {', '.join(LAYOUTS)}")
    parser.add_argument("--repeat", type=int, default=1, help="run the layouts this many times, alternating the order")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--admin-dsn", default=os.environ.get("BENCH_ADMIN_DSN", "postgresql://postgres@127.0.0.1:5432/postgres"))
    args = parser.parse_args()
    layouts = [LAYOUTS[name] for name in args.layouts.split(",")]

    print(f"building {args.spans} spans ...", file=sys.stderr)
    profile = Profile(count=args.spans, end_ns=time.time_ns(), seed=args.seed, days=0.02, pii_rate=0.05,
                      batch_spans=args.per_request)
    payloads = [encode(batch, PROTOCOLS["grpc"]) for batch in TraceFactory(profile).batches(plan(profile))]
    workdir = ROOT / "bench" / "out" / f"cluster-{datetime.now().strftime('%Y%m%d-%H%M%S')}"
    # ABBA order with --repeat 2: a drift in the machine's load over the run hits every layout alike.
    order = [layout for r in range(args.repeat) for layout in (layouts if r % 2 == 0 else layouts[::-1])]
    runs = [run_layout(layout, payloads, args, workdir / str(n)) for n, layout in enumerate(order)]
    summary = []
    for layout in layouts:
        rates = [r["stored_spans_per_s"] for r in runs if r["layout"] == layout.name]
        projected = [r["one_core_each_spans_per_s"] for r in runs if r["layout"] == layout.name]
        summary.append({"layout": layout.name, "stored_spans_per_s": rates, "mean": round(statistics.mean(rates)),
                        "one_core_each_spans_per_s": round(statistics.mean(projected))})
    for entry in summary:
        entry["mean_vs_first"] = round(entry["mean"] / summary[0]["mean"], 2)
        entry["one_core_each_vs_first"] = round(entry["one_core_each_spans_per_s"] / summary[0]["one_core_each_spans_per_s"], 2)
    print(json.dumps({
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"), "commit": _commit(),
        "machine": f"{platform.node()} {os.cpu_count()} cores {platform.machine()}",
        "load_average_1m_at_end": os.getloadavg()[0],
        "spans": sum(p.spans for p in payloads), "per_request": args.per_request, "senders": args.senders,
        "summary": summary, "runs": runs,
    }))


if __name__ == "__main__":
    main()
