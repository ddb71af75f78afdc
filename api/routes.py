"""HTTP routes of the query API (under /api/v1): parse, query, serialise."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import orjson
from aiohttp import web
from psycopg_pool import AsyncConnectionPool

from api import logs, metric_series, queries, serialize, specs, trace_search, tree
from api.cache import AnswerCache
from api.params import Param, body_values, parse, query_values
from api.problems import Problem, bad_parameter, not_found
from api.settings import ApiSettings
from api.usage import usage
from api.queries import Rows
from api.window import EPOCH, Window, as_datetime, check_limit, decode_cursor, encode_cursor, page, window
from common import genai_events
from common.ops import ReadyCheck, run_checks

POOL = web.AppKey("pool", AsyncConnectionPool)
CURSOR_KEY = web.AppKey("cursor_key", bytes)
CACHE = web.AppKey("cache", AnswerCache)
SETTINGS = web.AppKey("settings", ApiSettings)
READY_CHECKS = web.AppKey("ready_checks", dict)
OPENAPI = web.AppKey("openapi", bytes)
PREFIX = "/api/v1"
MAX_BUCKETS = 10_080  # a week of minutes
MAX_UNPRICED = 100  # unpriced models listed by /models, most used first
MAX_BODY = 64 * 1024


def json_answer(body: Any, status: int = 200) -> web.Response:
    return web.Response(body=orjson.dumps(body), status=status, content_type="application/json")


def _query(request: web.Request, declared: tuple[Param, ...], *, attrs: bool = False) -> dict[str, Any]:
    return parse(declared, query_values(request.query, request.query.getall), attrs=attrs)


def _path_id(request: web.Request, name: str, size: int) -> bytes:
    declared = Param(name, "trace_id" if size == 16 else "span_id", "")
    return parse((declared,), {name: [request.match_info[name]]})[name]


async def get_trace(request: web.Request) -> web.Response:
    settings, cache, secret = request.app[SETTINGS], request.app[CACHE], request.app[CURSOR_KEY]
    trace_id = _path_id(request, "trace_id", 16)
    values = _query(request, specs.TRACE_BY_ID)
    limit = check_limit({"limit": values["limit"] or settings.trace_page_spans}, settings.trace_page_spans)
    bound = {"trace_id": trace_id.hex()}  # a cursor pages this trace only
    # The summary of a trace longer than a page is kept for API_CACHE_TTL, so each further
    # page reads only its own spans (on a 300,000-span trace the summary is most of a page's cost).
    summary_key = cache.key(request.path + "#summary", bound)
    async with request.app[POOL].connection() as conn:

        async def summary_json() -> bytes:
            found = await queries.trace_summary(conn, trace_id)
            if found is None:
                raise not_found(f"no trace with id {trace_id.hex()}")
            return orjson.dumps(_trace_summary(found))

        if values["cursor"] is None:
            after = None
            found = await queries.trace_summary(conn, trace_id)
            if found is None:
                raise not_found(f"no trace with id {trace_id.hex()}")
            summary = _trace_summary(found)
        else:
            key, _ = decode_cursor(values["cursor"], bound, ("nanos", "span_id", "nanos", "nanos"), secret)
            after = (key[0], bytes.fromhex(key[1]))
            summary = orjson.loads((await cache.get_or_compute(summary_key, summary_json))[0])
        first, last = summary.pop("first_start_us"), summary.pop("last_start_us")
        rows, events, links = await queries.trace_spans(conn, trace_id, as_datetime(first * 1000), as_datetime(last * 1000), after, limit)
        # The page's spans' log records, and on the first page the trace's records that name
        # none of its spans; read after the span tables (the order maintenance locks them in).
        records = await logs.trace_records(conn, trace_id, [bytes(r["span_id"]) for r in rows[:limit]])
        loose = await logs.trace_records_without_span(conn, trace_id) if values["cursor"] is None else []
    cursor = None
    if len(rows) > limit:
        rows = rows[:limit]
        position = [rows[-1]["start_time_unix_nano"], bytes(rows[-1]["span_id"]).hex(), first, last]
        cursor = encode_cursor(position, bound, None, secret)
        if values["cursor"] is None:
            await cache.put(summary_key, orjson.dumps({**summary, "first_start_us": first, "last_start_us": last}))
    by_span_events, by_span_links, by_span_records = _by_span(events), _by_span(links), _by_span(records)
    return json_answer({
        "trace_id": trace_id.hex(),
        "summary": summary,
        "span_count": summary["span_count"],
        "spans": [_full_span(row, depth, by_span_events, by_span_links, by_span_records) for depth, row in tree.tree_order(rows)],
        # Records of this trace that name no span of it (no span id, or a span not stored); first page only.
        "logs": [logs.record(r) for r in loose],
        "next_cursor": cursor,
    })


def _trace_summary(found: dict[str, Any]) -> dict[str, Any]:
    """A trace summary as answered, plus the bounds of its start times in microseconds."""
    summary = serialize.trace_summary(found)
    del summary["trace_id"]
    summary["first_start_us"] = (found["first_start"] - EPOCH) // timedelta(microseconds=1)
    summary["last_start_us"] = (found["last_start"] - EPOCH) // timedelta(microseconds=1)
    return summary


def _by_span(rows: list[dict[str, Any]]) -> dict[bytes, list[dict[str, Any]]]:
    grouped: dict[bytes, list[dict[str, Any]]] = defaultdict(list)
    for row in rows:
        grouped[bytes(row["span_id"])].append(row)
    return grouped


def _full_span(row: dict[str, Any], depth: int | None, events: Mapping[bytes, Rows], links: Mapping[bytes, Rows],
               records: Mapping[bytes, Rows]) -> dict[str, Any]:
    span_id = bytes(row["span_id"])
    answer = serialize.span(row)
    if depth is not None:
        answer["depth"] = depth
    answer["events"] = [serialize.event(e) for e in events.get(span_id, ())]
    answer["links"] = [serialize.link(link) for link in links.get(span_id, ())]
    answer["logs"] = [logs.record(r) for r in records.get(span_id, ())]
    # GenAI content in one shape wherever the SDK put it: span attributes, span events, log records.
    answer["messages"] = genai_events.span_messages(answer["attributes"], answer["events"], answer["logs"])
    return answer


async def search_traces(request: web.Request) -> web.Response:
    settings = request.app[SETTINGS]
    values = _query(request, specs.TRACE_SEARCH)
    limit = check_limit(values, settings.max_limit)
    by_start = values["sort"].lstrip("-") == "start_time"
    shape = ("nanos" if by_start else "int64", "trace_id")
    span, after = page(values, settings.default_window, settings.max_search_window, shape, request.app[CURSOR_KEY])
    async with request.app[POOL].connection() as conn:
        rows = await trace_search.search_traces(conn, values, span, after, limit)
    sort_column = "root_start_ns" if by_start else "root_duration_ns"
    return _page_answer(
        request, "traces", [serialize.trace_summary(r) for r in rows[:limit]], rows, limit, values, span,
        lambda last: [last[sort_column], bytes(last["trace_id"]).hex()],
    )


def _page_answer(
    request: web.Request, name: str, items: list[dict[str, Any]], rows: list[dict[str, Any]], limit: int, values: Mapping[str, Any],
    span: Window, key: Callable[[dict[str, Any]], list[Any]],
) -> web.Response:
    more = len(rows) > limit
    cursor = encode_cursor(key(rows[limit - 1]), values, span, request.app[CURSOR_KEY]) if more else None
    return json_answer({"window": serialize.window(span.start_ns, span.end_ns), name: items, "next_cursor": cursor})


async def get_span(request: web.Request) -> web.Response:
    settings = request.app[SETTINGS]
    span_id = _path_id(request, "span_id", 8)
    values = _query(request, specs.SPAN_BY_ID)
    trace_id = values["trace_id"]
    given_window = values["start"] is not None or values["end"] is not None
    span = window(values, settings.default_window, settings.max_search_window) if given_window or trace_id is None else None
    async with request.app[POOL].connection() as conn:
        rows = await queries.span_by_id(conn, span_id, trace_id, span)
        if not rows:
            where = f" in trace {trace_id.hex()}" if trace_id else " in the window (give trace_id, or start and end)"
            raise not_found(f"no span with id {span_id.hex()}{where}")
        if len({bytes(r["trace_id"]) for r in rows}) > 1:
            raise Problem(409, "Ambiguous span id", f"span id {span_id.hex()} is in several traces; give trace_id")
        events, links = await queries.events_and_links(conn, bytes(rows[0]["trace_id"]), span_id)
        records = await logs.trace_records(conn, bytes(rows[0]["trace_id"]), [span_id])
    return json_answer(_full_span(rows[0], None, _by_span(events), _by_span(links), _by_span(records)))


async def search_spans(request: web.Request) -> web.Response:
    return await _span_search(request, _query(request, specs.SPAN_SEARCH, attrs=True))


async def post_query(request: web.Request) -> web.Response:
    if request.content_type != "application/json":
        raise Problem(415, "Unsupported media type", "send the search as application/json")
    _query(request, ())
    try:
        body = orjson.loads(await request.read())
    except orjson.JSONDecodeError as exc:
        raise bad_parameter("body", f"is not valid JSON: {exc}") from None
    return await _span_search(request, parse(specs.SPAN_SEARCH, body_values(body), attrs=True, from_query=False))


async def _span_search(request: web.Request, values: dict[str, Any]) -> web.Response:
    settings = request.app[SETTINGS]
    if values.get("name") is not None and values.get("name_prefix") is not None:
        raise bad_parameter("name_prefix", "give name or name_prefix, not both")
    limit = check_limit(values, settings.max_limit)
    span, after = page(
        values, settings.default_window, settings.max_search_window, ("nanos", "trace_id", "span_id"), request.app[CURSOR_KEY],
    )
    async with request.app[POOL].connection() as conn:
        rows = await queries.search_spans(conn, values, span, after, limit)
    return _page_answer(
        request, "spans", [serialize.span(r) for r in rows[:limit]], rows, limit, values, span,
        lambda last: [last["start_time_unix_nano"], bytes(last["trace_id"]).hex(), bytes(last["span_id"]).hex()],
    )


async def search_logs(request: web.Request) -> web.Response:
    settings = request.app[SETTINGS]
    values = _query(request, specs.LOG_SEARCH, attrs=True)
    limit = check_limit(values, settings.max_limit)
    # A record's key is 32 hex characters, shaped as a trace id.
    span, after = page(values, settings.default_window, settings.max_search_window, ("nanos", "trace_id"), request.app[CURSOR_KEY])
    async with request.app[POOL].connection() as conn:
        rows = await logs.search(conn, values, span, after, limit)
    return _page_answer(
        request, "logs", [logs.record(r) for r in rows[:limit]], rows, limit, values, span,
        lambda last: [last["time_unix_nano"], bytes(last["record_id"]).hex()],
    )


async def get_metric_series(request: web.Request) -> web.Response:
    settings = request.app[SETTINGS]
    values = _query(request, specs.METRIC_SERIES, attrs=True)
    if values["name"] is None:
        raise bad_parameter("name", "is required: the metric's name")
    span = window(values, settings.default_window, settings.max_usage_window)
    width = specs.BUCKETS[values["bucket"]]
    if span.seconds / width > MAX_BUCKETS:
        raise bad_parameter("bucket", f"this window holds more than {MAX_BUCKETS} buckets of {values['bucket']}; use a wider bucket")
    async with request.app[POOL].connection() as conn:
        rows = await metric_series.points(conn, values, span)
    found = metric_series.series(rows, values["aggregation"], span, width * 1_000_000_000)
    return json_answer({"window": serialize.window(span.start_ns, span.end_ns), "name": values["name"], "bucket": values["bucket"],
                        "aggregation": values["aggregation"], **found})


async def _cached(request: web.Request, values: Mapping[str, Any], compute: Callable[[], Awaitable[Any]]) -> web.Response:
    cache = request.app[CACHE]
    key = cache.key(request.path, values)

    async def body() -> bytes:
        return orjson.dumps(await compute())

    answer, status = await cache.get_or_compute(key, body)
    response = web.Response(body=answer, content_type="application/json")
    # RFC 9211 Cache-Status, so a caller can see whether the answer came from the cache.
    response.headers["Cache-Status"] = "observatory-api; hit" if status == "hit" else f"observatory-api; fwd={status}"
    return response


async def get_usage(request: web.Request) -> web.Response:
    settings = request.app[SETTINGS]
    values = _query(request, specs.USAGE)
    span = window(values, settings.default_window, settings.max_usage_window)
    width = specs.BUCKETS[values["bucket"]]
    if span.seconds / width > MAX_BUCKETS:
        raise bad_parameter("bucket", f"this window holds more than {MAX_BUCKETS} buckets of {values['bucket']}; use a wider bucket")
    groups = tuple(dict.fromkeys(values["group_by"]))

    async def compute() -> dict[str, Any]:
        result = await usage(
            request.app[POOL], values, span, timedelta(seconds=width), groups, settings.percentile_sample_spans,
            settings.rollup_tiers,
        )
        return {
            "window": serialize.window(span.start_ns, span.end_ns), "bucket": values["bucket"], "group_by": list(groups),
            "source": result.source, "latency_sample_fraction": round(result.sample_fraction, 6),
            "rows": [serialize.usage_row(r, groups) for r in result.rows],
        }

    return await _cached(request, values, compute)


async def get_services(request: web.Request) -> web.Response:
    return await _inventory(request, ("service",), {}, "services")


async def get_models(request: web.Request) -> web.Response:
    return await _inventory(request, ("model", "provider"), {"llm_only": True}, "models")


async def _inventory(request: web.Request, groups: tuple[str, ...], filters: dict[str, Any], name: str) -> web.Response:
    settings = request.app[SETTINGS]
    values = _query(request, specs.INVENTORY)
    span = window(values, settings.default_window, settings.max_usage_window)

    async def compute() -> dict[str, Any]:
        result = await usage(request.app[POOL], filters, span, None, groups, None, settings.rollup_tiers)
        items = sorted((serialize.usage_row(r, groups) for r in result.rows), key=lambda r: -r["request_count"])
        answer = {"window": serialize.window(span.start_ns, span.end_ns), "source": result.source, name: items}
        if name == "models":
            # A model whose calls used tokens but cost nothing has no price (genai-prices nor
            # PRICING_FILE): list those, most used first, so they can be priced.
            for item in items:
                item["priced"] = item["cost_usd"] > 0 or item["input_tokens"] + item["output_tokens"] == 0
            answer["unpriced"] = [
                {k: item[k] for k in ("model", "provider", "request_count", "input_tokens", "output_tokens")}
                for item in items if not item["priced"]
            ][:MAX_UNPRICED]
        return answer

    return await _cached(request, values, compute)


async def health(request: web.Request) -> web.Response:
    _query(request, ())
    return json_answer({"status": "ok", "service": "api"})


async def ready(request: web.Request) -> web.Response:
    _query(request, ())
    checks: dict[str, ReadyCheck] = request.app[READY_CHECKS]
    results = await run_checks(checks)
    ok = all(v == "ok" for v in results.values())
    return json_answer({"status": "ready" if ok else "not ready", "service": "api", "checks": results}, 200 if ok else 503)


async def openapi(request: web.Request) -> web.Response:
    _query(request, ())
    return web.Response(body=request.app[OPENAPI], content_type="application/json")


@dataclass(frozen=True)
class Route:
    method: str
    path: str
    handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
    scope: str | None  # None: no credential needed
    params: tuple[Param, ...]
    summary: str
    answer: str  # the OpenAPI component the success answer is
    attrs: bool = False
    cached: bool = False


ROUTES = (
    Route(
        "GET", "/traces/{trace_id}", get_trace, "traces", specs.TRACE_BY_ID,
        "A trace: its summary, and its spans (up to API_TRACE_PAGE_SPANS an answer, paged by start time) in tree order with events and links",
        "Trace",
    ),
    Route("GET", "/traces", search_traces, "traces", specs.TRACE_SEARCH, "Trace summaries in a window, keyset-paged", "TracePage"),
    Route("GET", "/spans/{span_id}", get_span, "traces", specs.SPAN_BY_ID, "One span with its events and links", "SpanDetail"),
    Route("GET", "/spans", search_spans, "traces", specs.SPAN_SEARCH, "Span search, keyset-paged; attr.KEY=VALUE filters by attribute", "SpanPage", attrs=True),
    Route("POST", "/query", post_query, "traces", specs.SPAN_SEARCH, "Span search with the parameters of GET /spans as a JSON body", "SpanPage", attrs=True),
    Route("GET", "/logs", search_logs, "traces", specs.LOG_SEARCH, "Log record search, keyset-paged; attr.KEY=VALUE filters by attribute", "LogPage", attrs=True),
    Route("GET", "/metric-series", get_metric_series, "usage", specs.METRIC_SERIES, "A metric's series over time, aggregated per bucket; attr.KEY=VALUE filters by attribute", "MetricSeries", attrs=True),
    Route("GET", "/metrics", get_usage, "usage", specs.USAGE, "LLM usage over time: requests, errors, latency, tokens, cost", "Usage", cached=True),
    Route("GET", "/services", get_services, "usage", specs.INVENTORY, "Services with spans in a window", "Services", cached=True),
    Route("GET", "/models", get_models, "usage", specs.INVENTORY, "LLM models used in a window", "Models", cached=True),
    Route("GET", "/health", health, None, (), "The process answers", "Health"),
    Route("GET", "/ready", ready, None, (), "PostgreSQL and Redis answer", "Ready"),
    Route("GET", "/openapi.json", openapi, None, (), "This description (OpenAPI 3.1)", "OpenApi"),
)


def add_routes(app: web.Application) -> dict[str, str | None]:
    """Registers every route; returns each route's scope by path template."""
    for route in ROUTES:
        app.router.add_route(route.method, PREFIX + route.path, route.handler)
    return {PREFIX + route.path: route.scope for route in ROUTES}
