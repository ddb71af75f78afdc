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
3. ceiling: the same rows (the first --ceiling-spans of them, 300,000 by default: a COPY into
   the emptied table is fastest while the table is small, so a sample errs on the high side)
   COPYed straight into the same table (after TRUNCATE), so the
   pipeline's figure is also a ratio of what this database can take;
4. CPU seconds and peak RSS of each service over the run;
5. Redis after the run: entries and bytes left in this run's streams once every stored span
   is acknowledged, beside the spans not yet written (the backlog).
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
from bench.e2e.stack import BenchStack, cpu_by_command, cpu_seconds  # noqa: E402
from cli.loadgen import Profile, TraceFactory, plan  # noqa: E402
from cli.loadgen.send import Payload, Retryable, encode, make_sender, send_all  # noqa: E402
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest  # noqa: E402

PROTOCOLS = {"grpc": "grpc", "http": "http/protobuf", "json": "http/json"}
OTHER_PROCESSES = ("postgres", "redis-server")


async def throughput(stack: BenchStack, payloads: list[Payload], protocol: str, senders: int) -> dict:
    total = sum(p.spans for p in payloads)
    endpoint = stack.endpoint(protocol)
    services_before = {name: cpu_seconds(s.proc.pid) for name, s in stack.services.items()}
    others_before, loadgen_before = cpu_by_command(OTHER_PROCESSES), time.process_time()
    started = time.perf_counter()
    sent = await send_all(payloads, PROTOCOLS[protocol], endpoint, concurrency=senders)
    acked = time.perf_counter()
    if sent.failed_spans:
        raise RuntimeError(f"{sent.failed_spans} spans were not accepted: {sent.errors}")
    while (stored := await asyncio.to_thread(stack.stored)) < sent.spans:
        await asyncio.sleep(0.05)
    visible = time.perf_counter()
    others = cpu_by_command(OTHER_PROCESSES)
    cpu = {name: cpu_seconds(s.proc.pid) - services_before[name] for name, s in stack.services.items()}
    cpu.update({name: others[name] - others_before[name] for name in OTHER_PROCESSES})
    cpu["load generator"] = time.process_time() - loadgen_before
    counted = await asyncio.to_thread(stack.counted)
    if counted != sent.spans:
        raise RuntimeError(f"{sent.spans} spans were accepted but {counted} rows are stored")
    return {
        "spans": total,
        "accepted_spans_per_s": round(sent.spans / (acked - started)),
        "stored_spans_per_s": round(sent.spans / (visible - started)),
        "stored": stored,
        "seconds": round(visible - started, 2),
        "retries": sent.retries,
        # CPU seconds over the phase, and per stored span: where the machine's two cores went.
        "cpu_s": {name: round(seconds, 1) for name, seconds in cpu.items()},
        "cpu_us_per_span": {name: round(seconds / sent.spans * 1e6, 1) for name, seconds in cpu.items()},
    }


async def _send_timed(sender, payload: Payload, sent_at: list[float], index: int) -> int:  # type: ignore[no-untyped-def]
    """Send until accepted; records when the first attempt left. Returns the retries."""
    sent_at[index] = time.perf_counter()
    retries = 0
    while True:
        try:
            await sender.send(payload.body)
            return retries
        except Retryable as exc:
            retries += 1
            await asyncio.sleep(exc.after or 0.1)


async def lag(stack: BenchStack, payloads: list[Payload], protocol: str, rate: float) -> dict:
    """Offer `rate` spans/s; a request's lag = first poll whose stored count covers it - its send time."""
    base = await asyncio.to_thread(stack.stored)
    need = []
    cumulative = 0
    for payload in payloads:
        cumulative += payload.spans
        need.append(cumulative)
    sent_at = [0.0] * len(payloads)
    polls: list[tuple[float, int]] = []
    sender = make_sender(PROTOCOLS[protocol], stack.endpoint(protocol))
    done = asyncio.Event()

    async def poll() -> None:
        while not done.is_set() or (polls and polls[-1][1] < cumulative):
            polls.append((time.perf_counter(), await asyncio.to_thread(stack.stored) - base))
            await asyncio.sleep(0.02)

    poller = asyncio.create_task(poll())
    started = time.perf_counter()
    tasks = []
    for index, payload in enumerate(payloads):
        await asyncio.sleep(max(0.0, started + (need[index] - payload.spans) / rate - time.perf_counter()))
        tasks.append(asyncio.create_task(_send_timed(sender, payload, sent_at, index)))
    retries = sum(await asyncio.gather(*tasks))
    done.set()
    await poller
    await sender.close()
    lags, at = [], 0
    for index, covered in enumerate(need):
        while at < len(polls) and polls[at][1] < covered:
            at += 1
        if at == len(polls):
            break
        lags.append(polls[at][0] - sent_at[index])
    lags.sort()
    return {
        "offered_spans_per_s": rate,
        "spans": cumulative,
        "seconds": round(time.perf_counter() - started, 1),
        "lag_p50_s": round(statistics.median(lags), 3),
        "lag_p99_s": round(lags[max(0, int(len(lags) * 0.99) - 1)], 3),
        "lag_max_s": round(lags[-1], 3),
        "retries": retries,
    }


def _commit() -> str:
    try:
        return subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True).stdout.strip()
    except OSError:
        return "unknown"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--spans", type=int, default=200_000, help="spans for the throughput phase (0 skips it)")
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
    parser.add_argument("--ceiling-spans", type=int, default=300_000,
                        help="COPY the first this many of the same spans for the ceiling (into the emptied table)")
    parser.add_argument("--keep", action="store_true", help="keep the database afterwards")
    args = parser.parse_args()

    lag_spans = int(args.lag_rate * args.lag_seconds)
    print(f"building {args.spans + lag_spans} spans ...", file=sys.stderr)
    profile = Profile(count=args.spans + lag_spans, end_ns=time.time_ns(), seed=args.seed, days=0.02,
                      pii_rate=args.pii_rate, batch_spans=args.per_request)
    # Bodies are encoded as the batches are built and only the messages the ceiling needs are
    # kept: a two-minute run's 2 million spans held as messages as well took most of the RAM.
    payloads: list[Payload] = []
    kept: list[ExportTraceServiceRequest] = []
    body_bytes = body_spans = kept_spans = 0
    ceiling_spans = min(args.ceiling_spans, args.spans) if args.spans else args.ceiling_spans
    for batch in TraceFactory(profile).batches(plan(profile)):
        payloads.append(encode(batch, PROTOCOLS[args.protocol]))
        if len(payloads) <= 200:
            body_bytes, body_spans = body_bytes + len(batch.body()), body_spans + batch.spans
        if kept_spans < ceiling_spans:
            kept.append(batch.request)
            kept_spans += batch.spans
    span_bytes = body_bytes / max(1, body_spans)
    split = 0
    counted = 0
    while split < len(payloads) and counted < args.spans:
        counted += payloads[split].spans
        split += 1

    stack = BenchStack(args.admin_dsn, args.redis_url, ROOT / "bench" / "out" / datetime.now().strftime("%Y%m%d-%H%M%S"),
                       extra_env={"COLLECTOR_WORKERS": str(args.workers),
                                  "ENABLE_PII_DETECTION": "true" if args.redaction == "on" else "false",
                                  "MAX_QUEUE_SIZE": "2000000"})
    stack.start()
    try:
        result: dict = {}
        if split:
            print("throughput phase ...", file=sys.stderr)
            result["throughput"] = asyncio.run(throughput(stack, payloads[:split], args.protocol, args.senders))
        if lag_spans:
            print("lag phase ...", file=sys.stderr)
            result["lag"] = asyncio.run(lag(stack, payloads[split:], args.protocol, args.lag_rate))
        result["usage"] = stack.usage()
        result["redis_after"] = stack.redis_footprint()
        print("raw COPY ceiling ...", file=sys.stderr)
        ceiling = raw_copy_ceiling(stack.dsn(), kept)
        result["ceiling"] = ceiling
        if split:
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
