"""The SQL of trace and span reads. Every statement is built from fixed fragments in this
file; every value a caller sends travels as a bound parameter."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from psycopg import AsyncConnection
from psycopg.rows import dict_row
from psycopg.types.json import Jsonb

from api.window import Window, as_datetime
from common.otlp import SPAN_KINDS, STATUS_CODES

SPAN_FIELDS = """
    trace_id, span_id, parent_span_id, trace_state, name, kind, status_code, status_message,
    service_name, scope_name, scope_version, start_time, start_time_unix_nano, end_time_unix_nano, duration_ns,
    llm_provider, llm_operation, llm_request_model, llm_response_model, input_tokens, output_tokens,
    total_tokens, cache_read_tokens, cache_write_tokens, reasoning_tokens, cost_input_usd,
    cost_output_usd, cost_total_usd, attributes, resource_attributes, dropped_attributes_count,
    dropped_events_count, dropped_links_count, flags, resource_schema_url, resource_dropped_attributes_count,
    scope_attributes, scope_schema_url, scope_dropped_attributes_count, exact_values
"""
EVENT_FIELDS = "span_id, span_start_time, event_index, time_unix_nano, name, attributes, dropped_attributes_count, exact_values"
LINK_FIELDS = ("span_id, span_start_time, link_index, linked_trace_id, linked_span_id, trace_state, flags, attributes, "
               "dropped_attributes_count, exact_values")
MS = 1_000_000
ERROR = STATUS_CODES.index("error")


@dataclass
class Where:
    """Conditions joined by AND, with their bound values in order."""

    conditions: list[str] = field(default_factory=list)
    args: list[Any] = field(default_factory=list)

    def add(self, condition: str, *args: Any) -> None:
        self.conditions.append(condition)
        self.args.extend(args)

    def sql(self) -> str:
        return " AND ".join(self.conditions) or "true"


def like_prefix(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"


def in_window(where: Where, span: Window) -> None:
    # The timestamptz bounds let the planner prune partitions and use the time index; the
    # nanosecond bounds make the edges exact.
    where.add("start_time >= %s AND start_time < %s", span.start, span.end)
    where.add("start_time_unix_nano >= %s AND start_time_unix_nano < %s", span.start_ns, span.end_ns)


def _ranges(where: Where, f: Mapping[str, Any]) -> None:
    for column, low, high, scale in (
        ("duration_ns", "min_duration_ms", "max_duration_ms", MS),
        ("input_tokens", "min_input_tokens", "max_input_tokens", 1),
        ("output_tokens", "min_output_tokens", "max_output_tokens", 1),
        ("total_tokens", "min_total_tokens", "max_total_tokens", 1),
        ("cost_total_usd", "min_cost_usd", "max_cost_usd", 1),
    ):
        if f.get(low) is not None:
            where.add(f"{column} >= %s", _scaled(f[low], scale))
        if f.get(high) is not None:
            where.add(f"{column} <= %s", _scaled(f[high], scale))


def _scaled(value: float, scale: int) -> Any:
    return round(value * scale) if scale != 1 else value


def span_where(f: Mapping[str, Any], span: Window) -> Where:
    where = Where()
    in_window(where, span)
    for column, name in (("trace_id", "trace_id"), ("service_name", "service"), ("name", "name"), ("llm_provider", "provider")):
        if f.get(name) is not None:
            where.add(f"{column} = %s", f[name])
    if f.get("name_prefix") is not None:
        where.add("name LIKE %s", like_prefix(f["name_prefix"]))
    if f.get("kind") is not None:
        where.add("kind = %s", SPAN_KINDS.index(f["kind"]))
    if f.get("status") is not None:
        where.add("status_code = %s", STATUS_CODES.index(f["status"]))
    if f.get("model") is not None:
        where.add("(llm_request_model = %s OR llm_response_model = %s)", f["model"], f["model"])
    _ranges(where, f)
    for key, candidates in f.get("attrs", {}).items():
        # Containment (@>) is what a GIN index on attributes answers.
        where.add("(" + " OR ".join(["attributes @> %s"] * len(candidates)) + ")", *(Jsonb({key: v}) for v in candidates))
    for key in f.get("has_attr", []):
        where.add("attributes ? %s", key)
    return where


async def search_spans(
    conn: AsyncConnection, f: Mapping[str, Any], span: Window, after: list[Any] | None, limit: int,
) -> list[dict[str, Any]]:
    where = span_where(f, span)
    descending = f["sort"].startswith("-")
    order = "DESC" if descending else "ASC"
    if after is not None:
        # Keyset: the row just after the previous page's last (start, trace, span) in this order.
        op = "<" if descending else ">"
        where.add(
            f"(start_time_unix_nano, trace_id, span_id) {op} (%s, %s, %s)",
            after[0], bytes.fromhex(after[1]), bytes.fromhex(after[2]),
        )
        where.add(f"start_time {op}= %s", as_datetime(after[0]))
    statement = (
        f"SELECT {SPAN_FIELDS} FROM spans WHERE {where.sql()} "
        f"ORDER BY start_time {order}, start_time_unix_nano {order}, trace_id {order}, span_id {order} LIMIT %s"
    )
    async with conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(statement, [*where.args, limit + 1])
        return await cur.fetchall()


async def span_by_id(conn: AsyncConnection, span_id: bytes, trace_id: bytes | None, span: Window | None) -> list[dict[str, Any]]:
    where = Where()
    where.add("span_id = %s", span_id)
    if trace_id is not None:
        where.add("trace_id = %s", trace_id)
    if span is not None:
        in_window(where, span)
    async with conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(f"SELECT {SPAN_FIELDS} FROM spans WHERE {where.sql()} ORDER BY start_time LIMIT 2", where.args)
        return await cur.fetchall()


Rows = list[dict[str, Any]]


async def trace(conn: AsyncConnection, trace_id: bytes) -> tuple[Rows, Rows, Rows]:
    """Every span, event and link of a trace in one pipeline: unbounded (a 300,000-span trace
    took 1.7 GB and 50 s), so no route uses it; answers page with trace_summary and
    trace_spans. Kept as the baseline bench/api/trace_lookup.py compares against."""
    spans, events, links = (conn.cursor(row_factory=dict_row) for _ in range(3))
    async with conn.pipeline():
        await spans.execute(
            f"SELECT {SPAN_FIELDS} FROM spans WHERE trace_id = %s ORDER BY start_time_unix_nano, span_id", (trace_id,),
        )
        await events.execute(f"SELECT {EVENT_FIELDS} FROM span_events WHERE trace_id = %s ORDER BY span_id, event_index", (trace_id,))
        await links.execute(f"SELECT {LINK_FIELDS} FROM span_links WHERE trace_id = %s ORDER BY span_id, link_index", (trace_id,))
    return await spans.fetchall(), await events.fetchall(), await links.fetchall()


# A trace's totals: the trace answer sums all its spans, trace search those near its root.
TRACE_TOTALS = f"""
       min(start_time_unix_nano) AS start_ns,
       max(end_time_unix_nano) AS end_ns,
       count(*) AS span_count,
       count(*) FILTER (WHERE status_code = {ERROR}) AS error_count,
       coalesce(sum(input_tokens), 0)::bigint AS input_tokens,
       coalesce(sum(output_tokens), 0)::bigint AS output_tokens,
       coalesce(sum(cost_total_usd), 0) AS cost_usd,
       array_agg(DISTINCT service_name ORDER BY service_name) AS services
"""
_TOTALS = f"SELECT trace_id, {TRACE_TOTALS} FROM spans WHERE {{where}} GROUP BY trace_id"
# A trace's totals and time bounds first (one scan: on compressed chunks it decompresses
# only the columns it sums, and only of the batches whose bloom filter may hold the id);
# the page, its events and links then read only the chunks or partitions in those bounds,
# instead of every column of every bloom match (false positives included) in every chunk.
_TRACE_TOTALS = f"""
SELECT {TRACE_TOTALS}, min(start_time) AS first_start, max(start_time) AS last_start
FROM spans WHERE trace_id = %s HAVING count(*) > 0
"""
_TRACE_ROOT = """
SELECT span_id AS root_span_id, name AS root_name, service_name AS root_service
FROM spans WHERE trace_id = %s
ORDER BY parent_span_id IS NOT NULL, start_time_unix_nano, span_id
LIMIT 1
"""


@dataclass(frozen=True)
class TracePage:
    summary: dict[str, Any] | None  # None: no such trace
    spans: Rows  # up to limit + 1, by start time (the extra one tells that another page exists)
    events: Rows
    links: Rows


async def trace_summary(conn: AsyncConnection, trace_id: bytes) -> dict[str, Any] | None:
    """A trace's totals over all its spans, its root, and first_start / last_start (the
    bounds of its spans' start times), computed by the database; None: no such trace."""
    totals, root = (conn.cursor(row_factory=dict_row) for _ in range(2))
    async with conn.pipeline():
        await totals.execute(_TRACE_TOTALS, (trace_id,))
        await root.execute(_TRACE_ROOT, (trace_id,))
    summary, root_row = await totals.fetchone(), await root.fetchone()
    if summary is None or root_row is None:
        return None
    return {"trace_id": trace_id, **summary, **root_row}


async def trace_spans(
    conn: AsyncConnection, trace_id: bytes, first: datetime | None, last: datetime | None, after: tuple[int, bytes] | None,
    limit: int, max_related: int | None = None,
) -> tuple[Rows, Rows, Rows]:
    """Up to limit + 1 spans of a trace by (start, span id) after the keyset position (the
    extra one tells that another page exists), with the events and links of the first
    `limit`; first and last, when known, bound the start times, so only those chunks or
    partitions are read. With max_related, at most max_related + 1 events and as many links
    (the earliest spans' first; the extra one tells that some were left out)."""
    where = Where()
    where.add("trace_id = %s", trace_id)
    related = Where()
    related.add("trace_id = %s", trace_id)
    if first is not None and last is not None:
        where.add("start_time >= %s AND start_time <= %s", first, last)
        related.add("span_start_time >= %s AND span_start_time <= %s", first, last)
    if after is not None:
        where.add("(start_time_unix_nano, span_id) > (%s, %s)", *after)
    page = f"FROM spans WHERE {where.sql()} ORDER BY start_time_unix_nano, span_id LIMIT %s"
    # Events and links of exactly the page's spans: the page's query again, as a subquery.
    of_page = f"{related.sql()} AND span_id IN (SELECT span_id {page})"
    of_page_args = [*related.args, *where.args, limit]
    cap = "" if max_related is None else f" LIMIT {int(max_related) + 1}"
    spans, events, links = (conn.cursor(row_factory=dict_row) for _ in range(3))
    async with conn.pipeline():
        await spans.execute(f"SELECT {SPAN_FIELDS} {page}", [*where.args, limit + 1])
        await events.execute(
            f"SELECT {EVENT_FIELDS} FROM span_events WHERE {of_page} ORDER BY span_start_time, span_id, event_index{cap}", of_page_args,
        )
        await links.execute(
            f"SELECT {LINK_FIELDS} FROM span_links WHERE {of_page} ORDER BY span_start_time, span_id, link_index{cap}", of_page_args,
        )
    return await spans.fetchall(), await events.fetchall(), await links.fetchall()


async def trace_span_count(conn: AsyncConnection, trace_id: bytes) -> int:
    async with conn.cursor() as cur:
        await cur.execute("SELECT count(*) FROM spans WHERE trace_id = %s", (trace_id,))
        row = await cur.fetchone()
    return int(row[0]) if row else 0


async def trace_page(conn: AsyncConnection, trace_id: bytes, after: tuple[int, bytes] | None, limit: int) -> TracePage:
    """A trace's summary and one page of its spans: two round trips."""
    summary = await trace_summary(conn, trace_id)
    if summary is None:
        return TracePage(None, [], [], [])
    spans, events, links = await trace_spans(conn, trace_id, summary["first_start"], summary["last_start"], after, limit)
    return TracePage(summary, spans, events, links)


async def events_and_links(
    conn: AsyncConnection, trace_id: bytes, span_id: bytes | None = None,
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    where = Where()
    where.add("trace_id = %s", trace_id)
    if span_id is not None:
        where.add("span_id = %s", span_id)
    async with conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(f"SELECT {EVENT_FIELDS} FROM span_events WHERE {where.sql()} ORDER BY span_id, event_index", where.args)
        events = await cur.fetchall()
        await cur.execute(f"SELECT {LINK_FIELDS} FROM span_links WHERE {where.sql()} ORDER BY span_id, link_index", where.args)
        links = await cur.fetchall()
    return events, links
