"""Every SQL statement the API runs; all parameterised."""

from __future__ import annotations

from typing import Any

from psycopg.rows import dict_row
from psycopg_pool import AsyncConnectionPool

SPAN_FIELDS = """
    trace_id, span_id, parent_span_id, trace_state, name, kind, status_code, status_message,
    service_name, scope_name, scope_version, start_time_unix_nano, end_time_unix_nano, duration_ns,
    llm_provider, llm_operation, llm_request_model, llm_response_model, input_tokens, output_tokens,
    total_tokens, cache_read_tokens, cache_write_tokens, reasoning_tokens, cost_input_usd,
    cost_output_usd, cost_total_usd, attributes, resource_attributes, dropped_attributes_count,
    dropped_events_count, dropped_links_count
"""


async def trace_spans(pool: AsyncConnectionPool, trace_id: bytes) -> list[dict[str, Any]]:
    async with pool.connection() as conn, conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(
            f"SELECT {SPAN_FIELDS} FROM spans WHERE trace_id = %s ORDER BY start_time_unix_nano, span_id",
            (trace_id,),
        )
        return await cur.fetchall()
