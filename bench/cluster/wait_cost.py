"""What REDIS_WAIT_REPLICAS=1 costs a publish, on a private 3-master, 3-replica Redis Cluster.

    .venv/bin/python bench/cluster/wait_cost.py --entries 2000 --rounds 2

The collector's own publishing code (common.stream.SpanStream.publish) adds entries of
--body-bytes (10 KB: about ten LLM spans) to three shards, first without and then with
WAIT 1, alternating for --rounds rounds so that a drift in the machine's load hits both.
Two figures each: latency of one publish at a time (p50, p99), and entries/s with
--concurrency publishes in flight (what a busy collector does). Prints one JSON line with
the ratios WAIT / no WAIT.
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
from datetime import datetime, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from bench.e2e.run_e2e import _commit  # noqa: E402
from common.redis_client import connect  # noqa: E402
from common.stream import SpanStream, StreamEntry, StreamKeys  # noqa: E402
from tests.infra import PrivateRedisCluster  # noqa: E402

SHARDS = 3


async def one_at_a_time(stream: SpanStream, entry: StreamEntry, entries: int) -> list[float]:
    latencies = []
    for n in range(entries):
        started = time.perf_counter()
        await stream.publish(n % SHARDS, entry)
        latencies.append(time.perf_counter() - started)
    return latencies


async def concurrent(stream: SpanStream, entry: StreamEntry, entries: int, concurrency: int) -> float:
    queue = iter(range(entries))

    async def publisher() -> None:
        for n in queue:
            await stream.publish(n % SHARDS, entry)

    started = time.perf_counter()
    await asyncio.gather(*(publisher() for _ in range(concurrency)))
    return entries / (time.perf_counter() - started)


async def measure(url: str, args: argparse.Namespace) -> dict:
    redis = connect(url, 5.0, read_timeout=7.0)
    entry = StreamEntry(os.urandom(args.body_bytes), 10, time.time_ns())
    runs: dict[int, dict[str, list[float]]] = {0: {"p50": [], "p99": [], "rate": []}, 1: {"p50": [], "p99": [], "rate": []}}
    try:
        for round_ in range(args.rounds):
            for wait in ((0, 1) if round_ % 2 == 0 else (1, 0)):
                stream = SpanStream(redis, StreamKeys(f"bench-wait:{round_}:{wait}:", SHARDS), wait_replicas=wait)
                await stream.publish(0, entry)  # loads the script and the slot map
                latencies = sorted(await one_at_a_time(stream, entry, args.entries))
                runs[wait]["p50"].append(latencies[len(latencies) // 2] * 1000)
                runs[wait]["p99"].append(latencies[int(len(latencies) * 0.99)] * 1000)
                runs[wait]["rate"].append(await concurrent(stream, entry, args.entries, args.concurrency))
                for n in range(SHARDS):  # keep the cluster's memory small between rounds
                    await redis.delete(stream.keys.stream(n), stream.keys.backlog(n))
    finally:
        await redis.aclose()
    summary = {
        f"wait_{wait}": {"publish_ms_p50": round(statistics.mean(r["p50"]), 3), "publish_ms_p99": round(statistics.mean(r["p99"]), 3),
                         "entries_per_s": round(statistics.mean(r["rate"]))}
        for wait, r in runs.items()
    }
    summary["ratios_wait_over_none"] = {
        "publish_ms_p50": round(summary["wait_1"]["publish_ms_p50"] / summary["wait_0"]["publish_ms_p50"], 2),
        "entries_per_s": round(summary["wait_1"]["entries_per_s"] / summary["wait_0"]["entries_per_s"], 2),
    }
    return summary


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--entries", type=int, default=2000, help="entries per measurement")
    parser.add_argument("--body-bytes", type=int, default=10_000)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    cluster = PrivateRedisCluster(Path(tempfile.mkdtemp(prefix="obs-bench-wait-")), masters=3, replicas_per_master=1).start()
    try:
        result = asyncio.run(measure(cluster.url, args))
    finally:
        cluster.stop()
    print(json.dumps({
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"), "commit": _commit(),
        "machine": f"{platform.node()} {os.cpu_count()} cores {platform.machine()}",
        "load_average_1m_at_end": os.getloadavg()[0], "entries": args.entries, "body_bytes": args.body_bytes,
        "concurrency": args.concurrency, "rounds": args.rounds, **result,
    }))


if __name__ == "__main__":
    main()
