"""`observatory reprice`: recompute the cost of stored LLM spans with the current prices.

Each span is priced again from its own stored attributes, exactly as the collector prices
one (common/genai.py, then collector/processors/pricing.py: genai-prices with PRICING_FILE
on top, at the span's start time), and its cost columns are updated where the result
differs; the rollups change by the same amounts in the same transaction (plain PostgreSQL),
or are refreshed over the window afterwards (TimescaleDB continuous aggregates). Running it
twice changes nothing the second time. Spans keep their provider and models (the rollups'
keys); token columns take the normalised counts.
"""

from __future__ import annotations

import argparse
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

import psycopg
from rich.console import Console
from rich.table import Table

from cli import db
from cli.errors import Failure, UsageError
from cli.progress import Bar
from cli.settings import CliSettings
from collector.processors.cost import choose
from collector.processors.pricing import load_price_book, price_call
from common import genai
from storage import rollups
from storage.maintenance import uses_timescaledb

CENT_BILLIONTHS = Decimal("1e-10")  # numeric(20, 10): what a cost column keeps
COLUMNS = ("input_tokens", "output_tokens", "total_tokens", "cost_input_usd", "cost_cache_read_usd",
           "cost_cache_write_usd", "cost_output_usd", "cost_reasoning_usd", "cost_total_usd", "cost_sdk_usd",
           "cost_source", "cost_price_ref", "cost_price_date")
_TYPES = ("int8", "int8", "int8", "numeric", "numeric", "numeric", "numeric", "numeric", "numeric", "numeric",
          "text", "text", "date")
_SELECT = f"""
SELECT trace_id, span_id, start_time, start_time_unix_nano, service_name, scope_name, llm_provider,
       llm_request_model, llm_response_model, attributes, {', '.join(COLUMNS)}
FROM spans
WHERE start_time >= %s AND start_time < %s
  AND (llm_request_model IS NOT NULL OR llm_response_model IS NOT NULL OR input_tokens IS NOT NULL)
  AND (start_time, trace_id, span_id) > (%s, %s, %s)
ORDER BY start_time, trace_id, span_id
LIMIT %s
"""
_UPDATE = f"""
UPDATE spans AS s SET {', '.join(f'{c} = v.{c}' for c in COLUMNS)}
FROM unnest(%s::bytea[], %s::bytea[], %s::timestamptz[], {', '.join(f'%s::{t}[]' for t in _TYPES)})
     AS v(trace_id, span_id, start_time, {', '.join(COLUMNS)})
WHERE s.trace_id = v.trace_id AND s.span_id = v.span_id AND s.start_time = v.start_time
"""
# Indexes of the rollup group values storage/rollups.py keeps (see its Groups).
_G_INPUT, _G_OUTPUT, _G_COST, _G_PARTS, _G_OTHER = 2, 3, 4, 6, 11


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "reprice", help="recompute the cost of stored LLM spans with the current prices",
        description="Recompute the cost of the LLM spans that started in [--from, --to) with the prices the "
        "collector uses now (genai-prices, with PRICING_FILE on top, at each span's start time), update the "
        "spans whose cost changes and bring the rollups along. Idempotent: a second run changes nothing. "
        "--dry-run shows the difference without writing.",
        epilog="examples:\n  observatory reprice --from 2026-11-01 --to 2026-12-01 --dry-run\n"
        "  PRICING_FILE=prices.json observatory reprice --from 2026-11-01T00:00:00Z --to now",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--from", dest="start", required=True, type=_time, metavar="TIME",
                        help="first start time, ISO 8601 (UTC unless it says otherwise)")
    parser.add_argument("--to", dest="end", required=True, type=_time, metavar="TIME", help="end (exclusive), ISO 8601 or 'now'")
    parser.add_argument("--dry-run", action="store_true", help="compute and report the difference, change nothing")
    parser.add_argument("--batch", type=int, default=2000, metavar="N", help="spans per transaction (default 2000)")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    parser.set_defaults(handler=_run)


def _time(text: str) -> datetime:
    if text == "now":
        return datetime.now(timezone.utc)
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an ISO 8601 time: {text!r}") from None
    return moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)


def _money(value: Decimal | None) -> Decimal | None:
    return None if value is None else value.quantize(CENT_BILLIONTHS, rounding=ROUND_HALF_UP)  # as numeric rounds


@dataclass
class Summary:
    examined: int = 0
    changed: int = 0
    before: Decimal = Decimal(0)
    after: Decimal = Decimal(0)
    by_model: dict[tuple[str | None, str | None], list[Any]] = field(default_factory=lambda: defaultdict(lambda: [0, Decimal(0), Decimal(0)]))


def reprice_row(row: dict[str, Any], book: Any, policy: str) -> tuple[Any, ...]:
    """The row's COLUMNS values as the collector would compute them now."""
    attributes = row["attributes"]
    if row["cost_source"] == "legacy":
        # Stored before cost sources were recorded: the collector of then wrote its own figure
        # as llm.cost.*, which is not an SDK's.
        attributes = {k: v for k, v in attributes.items() if not k.startswith("llm.cost.")}
    # The collector's own earlier figures are not input either.
    found = genai.pick(attributes, genai.COMPUTED_SLOTS)
    if found is None:
        return tuple(row[c] for c in COLUMNS)
    fields = genai.normalize(found, row["scope_name"], book.beside_scopes)
    # The span keeps its provider and models (the rollups' keys); prices are found by them.
    provider = row["llm_provider"] or fields.provider
    priced = None
    if fields.input_tokens is not None or fields.output_tokens is not None:
        period = book.period(provider, row["llm_response_model"], row["llm_request_model"], row["start_time_unix_nano"])
        if period is not None:
            priced = price_call(period, fields.input_tokens or 0, fields.output_tokens or 0,
                                fields.cache_read_tokens or 0, fields.cache_write_tokens or 0,
                                fields.reasoning_tokens or 0)
    source = choose(priced, fields.cost_sdk_usd, (fields.input_tokens or 0) + (fields.output_tokens or 0), policy)
    parts: tuple[Decimal | None, ...] = (None,) * 5
    ref = day = None
    if priced is not None:
        *parts, computed_total = (_money(v) for v in priced.usd())
        ref, day = priced.period.ref, priced.period.effective_from
    total = None
    if source == "sdk":
        total = _money(fields.cost_sdk_usd)
    elif source is not None:
        total = computed_total
    return (fields.input_tokens, fields.output_tokens, fields.total_tokens, *parts, total, _money(fields.cost_sdk_usd),
            source, ref, datetime.fromisoformat(day).date() if day else None)


def _contribution(values: tuple[Any, ...]) -> list[Decimal | int]:
    """What one span adds to its rollup group's token and cost sums (storage/rollups.py's rules)."""
    record = dict(zip(COLUMNS, values))
    out: list[Any] = [record["input_tokens"] or 0, record["output_tokens"] or 0, record["cost_total_usd"] or Decimal(0)]
    if record["cost_total_usd"] is not None and record["cost_source"] in rollups.COMPONENT_SOURCES:
        out += [record[c] or Decimal(0) for c in ("cost_input_usd", "cost_cache_read_usd", "cost_cache_write_usd",
                                                  "cost_output_usd", "cost_reasoning_usd")] + [Decimal(0)]
    else:
        out += [Decimal(0)] * 5 + [record["cost_total_usd"] or Decimal(0)]
    return out


def _delta(groups: rollups.Groups, row: dict[str, Any], old: tuple[Any, ...], new: tuple[Any, ...]) -> None:
    model = row["llm_request_model"] if row["llm_request_model"] is not None else row["llm_response_model"]
    key = (rollups.minute_of(row["start_time"]), row["service_name"], model, row["llm_provider"])
    group = groups.get(key)
    if group is None:
        group = groups[key] = [0, 0, 0, 0, Decimal(0), 0] + [Decimal(0)] * 6 + [0]
    before, after = _contribution(old), _contribution(new)
    group[_G_INPUT] += after[0] - before[0]
    group[_G_OUTPUT] += after[1] - before[1]
    group[_G_COST] += after[2] - before[2]
    for i in range(6):
        group[_G_PARTS + i] += after[3 + i] - before[3 + i]


def reprice(conn: psycopg.Connection, start: datetime, end: datetime, book: Any, policy: str, batch: int,
            dry_run: bool, bar: Bar | None = None) -> Summary:
    summary = Summary()
    timescale = uses_timescaledb(conn)
    last: tuple[Any, ...] = (start - timedelta(microseconds=1), b"", b"")
    while True:
        with conn.transaction(force_rollback=dry_run):
            lock = "" if dry_run else " FOR UPDATE"
            with conn.cursor(row_factory=psycopg.rows.dict_row) as cur:
                cur.execute(_SELECT + lock, (start, end, *last, batch))
                rows = cur.fetchall()
            if not rows:
                break
            changed, groups = [], {}
            for row in rows:
                old = tuple(row[c] for c in COLUMNS)
                new = reprice_row(row, book, policy)
                model_key = (row["llm_provider"], row["llm_request_model"] or row["llm_response_model"])
                stats = summary.by_model[model_key]
                stats[1] += old[8] or 0
                stats[2] += new[8] or 0
                summary.before += old[8] or 0
                summary.after += new[8] or 0
                if new != old:
                    stats[0] += 1
                    changed.append((row, new))
                    _delta(groups, row, old, new)
            summary.examined += len(rows)
            summary.changed += len(changed)
            if changed and not dry_run:
                keys = [[r["trace_id"] for r, _ in changed], [r["span_id"] for r, _ in changed],
                        [r["start_time"] for r, _ in changed]]
                conn.execute(_UPDATE, keys + [list(column) for column in zip(*(new for _, new in changed))])
                if not timescale:
                    rollups.upsert_sync(conn, groups)
            last = (rows[-1]["start_time"], rows[-1]["trace_id"], rows[-1]["span_id"])
        if bar is not None:
            bar.advance(len(rows))
    if timescale and not dry_run and summary.changed:
        refresh_aggregates(conn, start, end)
    return summary


def refresh_aggregates(conn: psycopg.Connection, start: datetime, end: datetime) -> None:
    """Fold the updated spans into both continuous aggregates (whole buckets around the window)."""
    first_hour = start.replace(minute=0, second=0, microsecond=0)
    last_hour = end.replace(minute=0, second=0, microsecond=0) + timedelta(hours=1)
    for view in ("span_rollups_1m", "span_rollups_1h"):  # the hourly tier reads the per-minute one
        conn.execute("CALL refresh_continuous_aggregate(%s, %s, %s)", (view, first_hour, last_hour))


def _count(conn: psycopg.Connection, start: datetime, end: datetime) -> int:
    return conn.execute(
        "SELECT count(*) FROM spans WHERE start_time >= %s AND start_time < %s AND "
        "(llm_request_model IS NOT NULL OR llm_response_model IS NOT NULL OR input_tokens IS NOT NULL)",
        (start, end)).fetchone()[0]


def _run(args: argparse.Namespace, settings: CliSettings) -> int:
    if args.end <= args.start:
        raise UsageError("--to must be after --from")
    if args.batch < 1:
        raise UsageError("--batch must be a positive number of spans")
    book = load_price_book(settings.pricing_file or None)
    where = db.describe(settings.database_url)
    with db.connect(settings.database_url) as conn:
        try:
            total = _count(conn, args.start, args.end)
        except psycopg.errors.UndefinedColumn:
            raise Failure(f"the database at {where} has no cost columns yet; run `observatory migrate up` first") from None
        with Bar("repricing" if not args.dry_run else "pricing (dry run)", total, enabled=False if args.quiet else None) as bar:
            summary = reprice(conn, args.start, args.end, book, settings.sdk_cost_policy, args.batch, args.dry_run, bar)
    _report(summary, args.dry_run)
    return 0


def _report(summary: Summary, dry_run: bool) -> None:
    console = Console()
    verb = "would change" if dry_run else "changed"
    console.print(f"{summary.examined:,} LLM spans examined, {verb} {summary.changed:,}; "
                  f"cost ${summary.before:,.6f} -> ${summary.after:,.6f} (difference ${summary.after - summary.before:+,.6f})")
    rows = sorted(((k, v) for k, v in summary.by_model.items() if v[0]), key=lambda kv: -abs(kv[1][2] - kv[1][1]))
    if not rows:
        return
    table = Table("provider", "model", "spans changed", "cost before", "cost after", "difference")
    for (provider, model), (count, before, after) in rows[:20]:
        table.add_row(provider or "", model or "", f"{count:,}", f"{before:,.6f}", f"{after:,.6f}", f"{after - before:+,.6f}")
    console.print(table)
