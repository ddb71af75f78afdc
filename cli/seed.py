"""`observatory seed`: realistic LLM-application traces, through the collector or straight into the database."""

from __future__ import annotations

import argparse
import asyncio
import time
from datetime import datetime, timezone
from pathlib import Path
from urllib.parse import urlsplit

from cli import db
from cli.args import fraction, positive_int
from cli.errors import Failure, UsageError
from cli.loadgen import Profile, Stats, TraceFactory, plan
from cli.loadgen import models as model_list
from cli.loadgen.database import write_all
from cli.loadgen.send import PROTOCOLS, SendResult, default_endpoint, send_all
from cli.progress import Bar
from cli.settings import CliSettings

# Prices come from genai-prices, which prices every built-in model; a PRICING_FILE's literal
# model names are used instead when one is set (your private models then get traffic).
SHIPPED_PRICING: tuple[Path, ...] = ()


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "seed", help="generate realistic LLM-application traces",
        description="Generate realistic LLM-application traces (HTTP root, LLM calls with GenAI attributes, "
        "retrieval and tool spans, errors, slow traces, events, planted PII) and send them to the collector "
        "over OTLP, or write them straight into the database. The same --seed (and --end) gives the same spans.",
        epilog="examples:\n  observatory seed --count 10000\n"
        "  observatory seed --count 5000000 --via db --jobs 2 --days 30 --services 8\n"
        "  observatory seed --count 100000 --protocol http/json --rate 2000 --concurrency 8",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--count", type=positive_int, required=True, metavar="N", help="spans to generate, exactly")
    parser.add_argument("--seed", type=int, default=1, metavar="S", help="random seed (default 1)")
    parser.add_argument("--via", choices=("otlp", "db"), default="otlp", help="send through the collector (default) or COPY into the database")
    parser.add_argument("--days", type=float, default=1.0, metavar="D", help="spread trace start times over the D days before --end (default 1)")
    parser.add_argument("--end", type=_timestamp, metavar="TIME", help="newest trace start, ISO 8601 (default: the start of the current hour, UTC)")
    parser.add_argument("--services", type=positive_int, default=3, metavar="K", help="services the traces come from (default 3)")
    parser.add_argument("--error-rate", type=fraction, default=0.05, metavar="R", help="share of traces with a failed LLM call (default 0.05)")
    parser.add_argument("--slow-rate", type=fraction, default=0.02, metavar="R", help="share of traces with slow LLM calls (default 0.02)")
    parser.add_argument("--pii-rate", type=fraction, default=0.05, metavar="R", help="share of traces whose user message holds PII (default 0.05)")
    parser.add_argument("--batch-spans", type=positive_int, default=200, metavar="N", help="spans per export request (default 200)")
    otlp = parser.add_argument_group("with --via otlp")
    otlp.add_argument("--protocol", choices=PROTOCOLS, default="grpc", help="OTLP transport (default grpc)")
    otlp.add_argument("--endpoint", metavar="ADDR", help="collector address (default SEED_ENDPOINT, else 127.0.0.1:4317 / http://127.0.0.1:4318)")
    otlp.add_argument("--concurrency", type=positive_int, default=4, metavar="N", help="concurrent senders (default 4)")
    otlp.add_argument("--rate", type=float, metavar="SPANS", help="target spans per second (default: as fast as accepted)")
    database = parser.add_argument_group("with --via db")
    database.add_argument("--jobs", type=positive_int, default=1, metavar="J",
                          help="worker processes building and writing (default 1; see bench/seed/RESULTS.md)")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    parser.set_defaults(handler=_run)


def _timestamp(text: str) -> datetime:
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an ISO 8601 time such as 2026-01-31T12:00:00Z") from None
    return moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)


def _default_end() -> datetime:
    # The start of the hour, not now: seeding twice in one hour with one seed stores the
    # same rows once (the writer skips duplicates) instead of near-copies a few seconds apart.
    return datetime.now(timezone.utc).replace(minute=0, second=0, microsecond=0)


def profile_from(args: argparse.Namespace, settings: CliSettings) -> tuple[Profile, str]:
    pricing = (Path(settings.pricing_file),) if settings.pricing_file else SHIPPED_PRICING
    models, source = model_list.choose(pricing)
    end = args.end or _default_end()
    try:
        profile = Profile(
            count=args.count, end_ns=int(end.timestamp()) * 1_000_000_000, seed=args.seed, services=args.services,
            days=args.days, error_rate=args.error_rate, slow_rate=args.slow_rate, pii_rate=args.pii_rate,
            batch_spans=args.batch_spans, models=models,
        )
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    return profile, source


def _run(args: argparse.Namespace, settings: CliSettings) -> int:
    profile, source = profile_from(args, settings)
    sizes = plan(profile)
    started = time.perf_counter()
    if args.via == "db":
        inserted, stats = _seed_db(profile, sizes, settings, args)
        note = f"{inserted:,} new rows" + (f", {stats.spans - inserted:,} were already stored" if inserted < stats.spans else "")
    else:
        result, stats = _seed_otlp(profile, sizes, settings, args)
        note = f"{result.spans:,} accepted by the collector"
        if result.retries:
            note += f", {result.retries:,} retried requests"
    seconds = time.perf_counter() - started
    print(
        f"seeded {stats.spans:,} spans in {stats.traces:,} traces ({stats.llm_spans:,} LLM calls, "
        f"{stats.error_traces:,} failing, {stats.slow_traces:,} slow, {sum(stats.pii.values()):,} with PII) "
        f"via {args.via} in {seconds:.1f}s ({stats.spans / seconds if seconds else 0:,.0f} spans/s); {note}. "
        f"Seed {profile.seed}; models: {source}."
    )
    return 0


def _seed_db(profile: Profile, sizes: list[int], settings: CliSettings, args: argparse.Namespace) -> tuple[int, Stats]:
    db.connect(settings.database_url).close()  # a clear error before any worker starts
    with Bar("seeding (db)", profile.count, enabled=False if args.quiet else None) as bar:
        try:
            return write_all(profile, sizes, settings.database_url, args.jobs, bar.advance)
        except Exception as exc:  # psycopg's errors, also when raised in a worker process
            if not type(exc).__module__.startswith("psycopg"):
                raise
            hint = ("Has `observatory migrate up` run on this database?" if "does not exist" in str(exc)
                    else "Spans written before the error stay; rerunning the same command adds only the rest.")
            raise Failure(
                f"writing to PostgreSQL at {db.describe(settings.database_url)} failed: {str(exc).strip()}. {hint}"
            ) from None


def _seed_otlp(profile: Profile, sizes: list[int], settings: CliSettings, args: argparse.Namespace) -> tuple[SendResult, Stats]:
    endpoint = args.endpoint or settings.seed_endpoint or default_endpoint(args.protocol)
    asyncio.run(_reachable(endpoint, args.protocol))
    stats = Stats()
    batches = TraceFactory(profile).batches(sizes, 0, stats)
    with Bar(f"seeding ({args.protocol})", profile.count, enabled=False if args.quiet else None) as bar:
        result = asyncio.run(send_all(batches, args.protocol, endpoint, args.concurrency, args.rate, bar.advance))
    if result.failed_requests or result.rejected_spans:
        raise Failure(
            f"the collector at {endpoint} did not take {result.failed_spans + result.rejected_spans:,} of "
            f"{stats.spans:,} spans ({result.failed_requests} requests failed, {result.rejected_spans} spans rejected): "
            + "; ".join(result.errors or ["partial success answers"])
        )
    return result, stats


async def _reachable(endpoint: str, protocol: str) -> None:
    """Fail in a second, not after minutes of retries, when nothing listens at the endpoint."""
    parts = urlsplit(endpoint if "://" in endpoint else f"//{endpoint}")
    host, port = parts.hostname or "127.0.0.1", parts.port or (4317 if protocol == "grpc" else 4318)
    try:
        _reader, writer = await asyncio.wait_for(asyncio.open_connection(host, port), 5)
    except (OSError, asyncio.TimeoutError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else "no answer in 5s"
        raise Failure(
            f"cannot reach the collector at {host}:{port} ({protocol}): {reason}. Is it running (observatory up)? "
            "Set --endpoint or SEED_ENDPOINT, or seed with --via db"
        ) from None
    writer.close()
