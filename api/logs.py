"""Log records: the SQL of log search and of a trace's records, and their JSON shape.

Every statement is built from fixed fragments; every value travels as a bound parameter.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from psycopg import AsyncConnection
from psycopg.rows import dict_row
from psycopg.types.json import Jsonb

from api.queries import Where, like_prefix
from api.serialize import rfc3339_nanos
from api.window import Window, as_datetime

LOG_FIELDS = """
    time_unix_nano, observed_time_unix_nano, trace_id, span_id, flags, severity_number, severity_text,
    service_name, event_name, body, attributes, resource_attributes, scope_name, scope_version,
    scope_attributes, dropped_attributes_count, record_id
"""
# SeverityNumber ranges of the OTLP logs data model: each name starts its range of four.
SEVERITIES = {"trace": 1, "debug": 5, "info": 9, "warn": 13, "error": 17, "fatal": 21}


def _contains(text: str) -> str:
    return "%" + like_prefix(text)


def log_where(f: Mapping[str, Any], span: Window) -> Where:
    where = Where()
    # timestamptz bounds prune partitions; nanosecond bounds make the edges exact.
    where.add("time >= %s AND time < %s", span.start, span.end)
    where.add("time_unix_nano >= %s AND time_unix_nano < %s", span.start_ns, span.end_ns)
    for column, name in (("service_name", "service"), ("trace_id", "trace_id"), ("span_id", "span_id"),
                         ("event_name", "event_name")):
        if f.get(name) is not None:
            where.add(f"{column} = %s", f[name])
    if f.get("min_severity") is not None:
        where.add("severity_number >= %s", SEVERITIES[f["min_severity"]])
    if f.get("text") is not None:
        # The body as text: a string body unquoted, a structured one as its JSON.
        where.add("(body #>> '{}') ILIKE %s", _contains(f["text"]))
    for key, candidates in f.get("attrs", {}).items():
        where.add("(" + " OR ".join(["attributes @> %s"] * len(candidates)) + ")", *(Jsonb({key: v}) for v in candidates))
    return where


async def search(conn: AsyncConnection, f: Mapping[str, Any], span: Window, after: list[Any] | None,
                 limit: int) -> list[dict[str, Any]]:
    where = log_where(f, span)
    descending = f["sort"].startswith("-")
    order = "DESC" if descending else "ASC"
    if after is not None:
        op = "<" if descending else ">"
        where.add(f"(time_unix_nano, record_id) {op} (%s, %s)", after[0], bytes.fromhex(after[1]))
        where.add(f"time {op}= %s", as_datetime(after[0]))
    statement = (f"SELECT {LOG_FIELDS} FROM logs WHERE {where.sql()} "
                 f"ORDER BY time {order}, time_unix_nano {order}, record_id {order} LIMIT %s")
    async with conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(statement, [*where.args, limit + 1])
        return await cur.fetchall()


TRACE_LOGS = f"SELECT {LOG_FIELDS} FROM logs WHERE trace_id = %s ORDER BY time_unix_nano, record_id"
MAX_TRACE_RECORDS = 10_000  # records answered with one page of a trace, at most


async def trace_records(conn: AsyncConnection, trace_id: bytes, span_ids: list[bytes]) -> list[dict[str, Any]]:
    """The log records of these spans of a trace, oldest first."""
    if not span_ids:
        return []
    async with conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(f"SELECT {LOG_FIELDS} FROM logs WHERE trace_id = %s AND span_id = ANY(%s) "
                          "ORDER BY time_unix_nano, record_id LIMIT %s", (trace_id, span_ids, MAX_TRACE_RECORDS))
        return await cur.fetchall()


async def trace_records_without_span(conn: AsyncConnection, trace_id: bytes) -> list[dict[str, Any]]:
    """The records of a trace that name no span of it: no span id, or a span not stored."""
    async with conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(
            f"SELECT {LOG_FIELDS} FROM logs l WHERE l.trace_id = %s AND (l.span_id IS NULL OR NOT EXISTS "
            "(SELECT 1 FROM spans s WHERE s.trace_id = l.trace_id AND s.span_id = l.span_id)) "
            "ORDER BY time_unix_nano, record_id LIMIT %s", (trace_id, MAX_TRACE_RECORDS))
        return await cur.fetchall()


def record(row: dict[str, Any]) -> dict[str, Any]:
    """One log record as JSON: hex ids, RFC 3339 times, the body as it was sent (JSON)."""
    return {
        "time": rfc3339_nanos(row["time_unix_nano"]),
        "time_unix_nano": row["time_unix_nano"],
        "observed_time": rfc3339_nanos(row["observed_time_unix_nano"]),
        "observed_time_unix_nano": row["observed_time_unix_nano"],
        "trace_id": bytes(row["trace_id"]).hex() if row["trace_id"] else None,
        "span_id": bytes(row["span_id"]).hex() if row["span_id"] else None,
        "flags": row["flags"],
        "severity_number": row["severity_number"],
        "severity_text": row["severity_text"],
        "service_name": row["service_name"],
        "event_name": row["event_name"],
        "body": row["body"],
        "attributes": row["attributes"],
        "resource_attributes": row["resource_attributes"],
        "scope": {"name": row["scope_name"], "version": row["scope_version"], "attributes": row["scope_attributes"]},
        "dropped_attributes_count": row["dropped_attributes_count"],
        "record_id": bytes(row["record_id"]).hex(),
    }
