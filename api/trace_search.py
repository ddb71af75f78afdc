"""Trace summaries in a window: spans grouped by trace, filtered, keyset-paged.

A trace belongs to the window when its earliest span there starts inside it; its summary
(span count, errors, tokens, cost, services, duration) is computed over its spans that
start inside the window.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from psycopg import AsyncConnection
from psycopg.rows import dict_row

from api.queries import ERROR, MS, Where, in_window
from api.window import Window

_SUMMARY = f"""
SELECT trace_id,
       min(start_time_unix_nano) AS start_ns,
       max(end_time_unix_nano) AS end_ns,
       max(end_time_unix_nano) - min(start_time_unix_nano) AS duration_ns,
       count(*) AS span_count,
       count(*) FILTER (WHERE status_code = {ERROR}) AS error_count,
       coalesce(sum(input_tokens), 0)::bigint AS input_tokens,
       coalesce(sum(output_tokens), 0)::bigint AS output_tokens,
       coalesce(sum(cost_total_usd), 0) AS cost_usd,
       array_agg(DISTINCT service_name ORDER BY service_name) AS services,
       (array_agg(span_id ORDER BY parent_span_id IS NOT NULL, start_time_unix_nano, span_id))[1] AS root_span_id,
       (array_agg(name ORDER BY parent_span_id IS NOT NULL, start_time_unix_nano, span_id))[1] AS root_name,
       (array_agg(service_name ORDER BY parent_span_id IS NOT NULL, start_time_unix_nano, span_id))[1] AS root_service
FROM spans
WHERE {{where}}
GROUP BY trace_id
HAVING {{having}}
"""
_SORTS = {"start_time": "start_ns", "duration": "duration_ns"}


def _having(f: Mapping[str, Any]) -> Where:
    having = Where()
    if f.get("service") is not None:
        having.add("bool_or(service_name = %s)", f["service"])
    if f.get("model") is not None:
        having.add("bool_or(llm_request_model = %s OR llm_response_model = %s)", f["model"], f["model"])
    if f.get("provider") is not None:
        having.add("bool_or(llm_provider = %s)", f["provider"])
    if f.get("status") == "error":
        having.add(f"bool_or(status_code = {ERROR})")
    elif f.get("status") == "ok":
        having.add(f"NOT bool_or(status_code = {ERROR})")
    if f.get("min_duration_ms") is not None:
        having.add("max(end_time_unix_nano) - min(start_time_unix_nano) >= %s", round(f["min_duration_ms"] * MS))
    if f.get("max_duration_ms") is not None:
        having.add("max(end_time_unix_nano) - min(start_time_unix_nano) <= %s", round(f["max_duration_ms"] * MS))
    if f.get("min_cost_usd") is not None:
        having.add("coalesce(sum(cost_total_usd), 0) >= %s", f["min_cost_usd"])
    return having


async def search_traces(
    conn: AsyncConnection, f: Mapping[str, Any], span: Window, after: list[Any] | None, limit: int,
) -> list[dict[str, Any]]:
    where = Where()
    in_window(where, span)
    having = _having(f)
    column = _SORTS[f["sort"].lstrip("-")]
    descending = f["sort"].startswith("-")
    order = "DESC" if descending else "ASC"
    outer = Where()
    if f.get("root_name") is not None:
        outer.add("root_name = %s", f["root_name"])
    if after is not None:
        outer.add(f"({column}, trace_id) {'<' if descending else '>'} (%s, %s)", after[0], bytes.fromhex(after[1]))
    statement = (
        f"SELECT * FROM ({_SUMMARY.format(where=where.sql(), having=having.sql())}) AS traces "
        f"WHERE {outer.sql()} ORDER BY {column} {order}, trace_id {order} LIMIT %s"
    )
    async with conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(statement, [*where.args, *having.args, *outer.args, limit + 1])
        return await cur.fetchall()
