"""HTTP routes of the query API (under /api/v1)."""

from __future__ import annotations

from aiohttp import web
from psycopg_pool import AsyncConnectionPool

from api import queries, serialize
from common.otlp import parse_hex_id

POOL = web.AppKey("pool", AsyncConnectionPool)


def problem(status: int, title: str, detail: str, **extra: object) -> web.Response:
    """An RFC 9457 problem-details answer."""
    body = {"type": "about:blank", "title": title, "status": status, "detail": detail, **extra}
    return web.json_response(body, status=status, content_type="application/problem+json")


async def get_trace(request: web.Request) -> web.Response:
    raw = request.match_info["trace_id"]
    try:
        trace_id = parse_hex_id(raw.lower(), 16)
    except ValueError as exc:
        return problem(400, "Invalid parameter", f"trace_id {exc}", parameter="trace_id")
    rows = await queries.trace_spans(request.app[POOL], trace_id)
    if not rows:
        return problem(404, "Not found", f"no trace with id {trace_id.hex()}")
    return web.json_response({"trace_id": trace_id.hex(), "span_count": len(rows), "spans": [serialize.span(r) for r in rows]})


def add_routes(app: web.Application) -> None:
    app.router.add_get("/api/v1/traces/{trace_id}", get_trace)
