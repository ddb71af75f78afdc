"""The SQL of trace and span reads. Every statement is built from fixed fragments in this
file; every value a caller sends travels as a bound parameter."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
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
    dropped_events_count, dropped_links_count
"""
EVENT_FIELDS = "span_id, event_index, time_unix_nano, name, attributes, dropped_attributes_count"
LINK_FIELDS = "span_id, link_index, linked_trace_id, linked_span_id, trace_state, flags, attributes, dropped_attributes_count"
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


async def trace(conn: AsyncConnection, trace_id: bytes) -> tuple[Rows, Rows, Rows, Rows]:
    """A trace's spans, events, links and log records, sent as one pipeline: one network round trip."""
    from api.logs import TRACE_LOGS  # noqa: PLC0415 - api.logs builds on this module's Where

    spans, events, links, records = (conn.cursor(row_factory=dict_row) for _ in range(4))
    # The span tables first, then logs: the order maintenance takes their locks in.
    async with conn.pipeline():
        await spans.execute(
            f"SELECT {SPAN_FIELDS} FROM spans WHERE trace_id = %s ORDER BY start_time_unix_nano, span_id", (trace_id,),
        )
        await events.execute(f"SELECT {EVENT_FIELDS} FROM span_events WHERE trace_id = %s ORDER BY span_id, event_index", (trace_id,))
        await links.execute(f"SELECT {LINK_FIELDS} FROM span_links WHERE trace_id = %s ORDER BY span_id, link_index", (trace_id,))
        await records.execute(TRACE_LOGS, (trace_id,))
    return await spans.fetchall(), await events.fetchall(), await links.fetchall(), await records.fetchall()


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
