"""Scale-out benchmark: the same spans through several Redis layouts in one run, as ratios.

    .venv/bin/python bench/cluster/run_cluster.py --spans 30000

Each layout gets a fresh database and its own private Redis (a redis-server, or a Redis
Cluster of 3 masters made with redis-cli, both without persistence, on free ports), its
collectors and writers as real processes, and the same pre-built LLM traces (cli.loadgen),
sent at full speed over gRPC by --senders concurrent senders shared across the collectors.
Figures per layout: accepted spans/s (first send to last answer), stored spans/s (first send
to last row visible), CPU seconds of each kind of process; and the ratio of stored spans/s to
the first layout's. Layouts (name: Redis, collectors x writers, STREAM_SHARDS, WAIT):

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

from bench.e2e.run_e2e import OTHER_PROCESSES, PROTOCOLS, _commit  # noqa: E402
from bench.e2e.stack import BenchStack, Service, cpu_by_command, cpu_seconds, free_port  # noqa: E402
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


async def throughput(stack: ScaleStack, payloads: list[Payload], senders: int) -> dict:
    """Every payload at full speed, the senders divided over the collectors."""
    endpoints = [f"127.0.0.1:{port}" for port in stack.grpc_ports]
    parts = [payloads[i::len(endpoints)] for i in range(len(endpoints))]
    before = {name: cpu_seconds(s.proc.pid) for name, s in stack.services.items()}
    others_before = cpu_by_command(OTHER_PROCESSES)
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
    others = cpu_by_command(OTHER_PROCESSES)
    cpu: dict[str, float] = {}
    for name, service in stack.services.items():
        kind = name.split("-")[0]
        cpu[kind] = cpu.get(kind, 0.0) + cpu_seconds(service.proc.pid) - before[name]
    cpu.update({name: others[name] - others_before[name] for name in OTHER_PROCESSES})
    counted = await asyncio.to_thread(stack.counted)
    if counted != spans:
        raise RuntimeError(f"{spans} spans were accepted but {counted} rows are stored")
    return {
        "accepted_spans_per_s": round(spans / (acked - started)),
        "stored_spans_per_s": round(spans / (visible - started)),
        "seconds": round(visible - started, 2),
        "retries": sum(s.retries for s in sent),
        "cpu_s": {name: round(seconds, 1) for name, seconds in cpu.items()},
    }


def run_layout(layout: Layout, payloads: list[Payload], args: argparse.Namespace, workdir: Path) -> dict:
    directory = Path(tempfile.mkdtemp(prefix=f"obs-bench-{layout.name}-"))
    redis_server: PrivateRedis | PrivateRedisCluster
    if layout.cluster:
        redis_server = PrivateRedisCluster(directory, masters=3, replicas_per_master=layout.replicas).start()
    else:
        redis_server = PrivateRedis(directory).start()
    stack = ScaleStack(args.admin_dsn, redis_server.url, workdir / layout.name,
                       extra_env={"MAX_QUEUE_SIZE": "2000000", "ENABLE_PII_DETECTION": "true"})
    try:
        stack.start_layout(layout)
        print(f"{layout.name} ...", file=sys.stderr)
        result = asyncio.run(throughput(stack, payloads, args.senders))
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
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--admin-dsn", default=os.environ.get("BENCH_ADMIN_DSN", "postgresql://postgres@127.0.0.1:5432/postgres"))
    args = parser.parse_args()
    layouts = [LAYOUTS[name] for name in args.layouts.split(",")]

    print(f"building {args.spans} spans ...", file=sys.stderr)
    profile = Profile(count=args.spans, end_ns=time.time_ns(), seed=args.seed, days=0.02, pii_rate=0.05,
                      batch_spans=args.per_request)
    payloads = [encode(batch, PROTOCOLS["grpc"]) for batch in TraceFactory(profile).batches(plan(profile))]
    workdir = ROOT / "bench" / "out" / f"cluster-{datetime.now().strftime('%Y%m%d-%H%M%S')}"
    results = [run_layout(layout, payloads, args, workdir) for layout in layouts]
    baseline = results[0]["stored_spans_per_s"]
    for result in results:
        result["stored_vs_baseline"] = round(result["stored_spans_per_s"] / baseline, 2)
    print(json.dumps({
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"), "commit": _commit(),
        "machine": f"{platform.node()} {os.cpu_count()} cores {platform.machine()}",
        "load_average_1m_at_end": os.getloadavg()[0],
        "spans": sum(p.spans for p in payloads), "per_request": args.per_request, "senders": args.senders,
        "layouts": results,
    }))


if __name__ == "__main__":
    main()
