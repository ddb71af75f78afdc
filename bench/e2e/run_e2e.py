"""End-to-end benchmark: OTLP in, rows visible in PostgreSQL out, on one machine.

    .venv/bin/python bench/e2e/run_e2e.py --spans 300000 --protocol grpc --workers 2

Starts the collector (COLLECTOR_WORKERS processes) and the storage writer against a fresh
database and Redis key prefix (PostgreSQL and Redis already running locally), pre-builds
realistic LLM traces with the load generator (cli.loadgen, the module `observatory seed`
uses), then measures, and prints one JSON line:

1. throughput: every span sent at full speed by N concurrent senders; accepted spans/s
   (first send to last acknowledgement) and stored spans/s (first send to last row visible),
   refusals by answer;
2. lag: a fixed offered rate for a while; export-to-visible lag p50/p99, where a request's
   lag is the time from its send until the stored count first covers it (the writer
   commits in stream order; counts are polled every 20 ms, which bounds the error);
3. ceiling: the same rows COPYed straight into the same table (after TRUNCATE), so the
   pipeline's figure is also a ratio of what this database can take;
4. CPU seconds and peak RSS of each service over the run.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from bench.e2e.ceiling import raw_copy_ceiling  # noqa: E402
from bench.e2e.senders import make_sender, otlp_json, send_until_accepted  # noqa: E402
from bench.e2e.stack import BenchStack  # noqa: E402
from bench.e2e.workload import build_requests  # noqa: E402


async def throughput(stack: BenchStack, bodies: list[tuple[bytes, int]], protocol: str, senders: int) -> dict:
    refusals: dict[str, int] = {}
    queue: asyncio.Queue[tuple[bytes, int]] = asyncio.Queue()
    for item in bodies:
        queue.put_nowait(item)
    total = sum(n for _, n in bodies)

    async def worker() -> None:
        sender = make_sender(protocol, stack.grpc_port, stack.http_port)
        try:
            while not queue.empty():
                body, _ = queue.get_nowait()
                await send_until_accepted(sender, body, refusals)
        finally:
            await sender.close()

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(senders)))
    acked = time.perf_counter()
    while (stored := await asyncio.to_thread(stack.stored)) < total:
        await asyncio.sleep(0.05)
    visible = time.perf_counter()
    return {
        "spans": total,
        "accepted_spans_per_s": round(total / (acked - started)),
        "stored_spans_per_s": round(total / (visible - started)),
        "stored": stored,
        "seconds": round(visible - started, 2),
        "refusals": refusals,
    }


async def lag(stack: BenchStack, bodies: list[tuple[bytes, int]], protocol: str, rate: float) -> dict:
    """Offer `rate` spans/s; each request's lag = first poll whose count covers it - its send time."""
    base = await asyncio.to_thread(stack.stored)
    sent: list[tuple[float, int]] = []  # (send time, cumulative spans)
    polls: list[tuple[float, int]] = []
    refusals: dict[str, int] = {}
    sender = make_sender(protocol, stack.grpc_port, stack.http_port)
    done = asyncio.Event()

    async def poll() -> None:
        while not done.is_set() or (polls and polls[-1][1] < (sent[-1][1] if sent else 0)):
            count = await asyncio.to_thread(stack.stored) - base
            polls.append((time.perf_counter(), count))
            await asyncio.sleep(0.02)

    poller = asyncio.create_task(poll())
    cumulative = 0
    started = time.perf_counter()
    tasks = []
    for body, spans in bodies:
        due = started + cumulative / rate
        await asyncio.sleep(max(0.0, due - time.perf_counter()))
        cumulative += spans
        sent.append((time.perf_counter(), cumulative))
        tasks.append(asyncio.create_task(send_until_accepted(sender, body, refusals)))
    await asyncio.gather(*tasks)
    done.set()
    await poller
    await sender.close()
    lags = []
    index = 0
    for t_sent, need in sent:
        while index < len(polls) and polls[index][1] < need:
            index += 1
        if index == len(polls):
            break
        lags.append(polls[index][0] - t_sent)
    lags.sort()
    return {
        "offered_spans_per_s": rate,
        "spans": cumulative,
        "seconds": round(time.perf_counter() - started, 1),
        "lag_p50_s": round(statistics.median(lags), 3),
        "lag_p99_s": round(lags[int(len(lags) * 0.99) - 1], 3),
        "lag_max_s": round(lags[-1], 3),
        "refusals": refusals,
    }


def _commit() -> str:
    try:
        return subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True).stdout.strip()
    except OSError:
        return "unknown"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--spans", type=int, default=200_000, help="spans for the throughput phase")
    parser.add_argument("--per-request", type=int, default=100, help="spans per export request")
    parser.add_argument("--protocol", choices=("grpc", "http", "json"), default="grpc")
    parser.add_argument("--senders", type=int, default=8, help="concurrent senders")
    parser.add_argument("--workers", type=int, default=1, help="COLLECTOR_WORKERS")
    parser.add_argument("--lag-rate", type=float, default=5000, help="offered spans/s in the lag phase (0 skips it)")
    parser.add_argument("--lag-seconds", type=float, default=30)
    parser.add_argument("--pii-rate", type=float, default=0.05, help="share of spans with planted PII")
    parser.add_argument("--redaction", choices=("on", "off"), default="on")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--admin-dsn", default=os.environ.get("BENCH_ADMIN_DSN", "postgresql://postgres@127.0.0.1:5432/postgres"))
    parser.add_argument("--redis-url", default=os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/0"))
    parser.add_argument("--keep", action="store_true", help="keep the database afterwards")
    args = parser.parse_args()

    lag_spans = int(args.lag_rate * args.lag_seconds)
    print(f"building {args.spans + lag_spans} spans ...", file=sys.stderr)
    requests = build_requests(args.spans + lag_spans, args.per_request, args.seed, args.pii_rate)
    encode = otlp_json if args.protocol == "json" else (lambda r: r.SerializeToString())
    bodies = [(encode(r), sum(len(s.spans) for rs in r.resource_spans for s in rs.scope_spans)) for r in requests]
    span_bytes = sum(len(r.SerializeToString()) for r in requests[:200]) / max(1, sum(n for _, n in bodies[:200]))
    split = 0
    counted = 0
    while split < len(bodies) and counted < args.spans:
        counted += bodies[split][1]
        split += 1

    stack = BenchStack(args.admin_dsn, args.redis_url, ROOT / "bench" / "out" / datetime.now().strftime("%Y%m%d-%H%M%S"),
                       extra_env={"COLLECTOR_WORKERS": str(args.workers),
                                  "ENABLE_PII_DETECTION": "true" if args.redaction == "on" else "false",
                                  "MAX_QUEUE_SIZE": "2000000"})
    stack.start()
    try:
        print("throughput phase ...", file=sys.stderr)
        result = {"throughput": asyncio.run(throughput(stack, bodies[:split], args.protocol, args.senders))}
        if lag_spans:
            print("lag phase ...", file=sys.stderr)
            result["lag"] = asyncio.run(lag(stack, bodies[split:], args.protocol, args.lag_rate))
        result["usage"] = stack.usage()
        print("raw COPY ceiling ...", file=sys.stderr)
        ceiling = raw_copy_ceiling(stack.dsn(), requests[: max(1, split)])
        result["ceiling"] = ceiling
        result["stored_vs_ceiling"] = round(result["throughput"]["stored_spans_per_s"] / ceiling["rows_per_s"], 3)
    finally:
        stack.stop(drop=not args.keep)
    result.update({
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "commit": _commit(),
        "machine": f"{platform.node()} {os.cpu_count()} cores {platform.machine()}",
        "protocol": args.protocol, "workers": args.workers, "senders": args.senders,
        "redaction": args.redaction, "per_request": args.per_request, "bytes_per_span": round(span_bytes),
    })
    print(json.dumps(result))


if __name__ == "__main__":
    main()
