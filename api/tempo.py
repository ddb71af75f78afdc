"""The subset of Grafana Tempo's HTTP API that Grafana's Tempo data source uses, on the API
port and behind the API's credentials (scope `traces`), so Grafana shows our traces in its
trace view:

- `GET /api/traces/{id}` and `GET /api/v2/traces/{id}`: the trace as OTLP (`TracesData`
  protobuf with `Accept: application/protobuf`, else OTLP/JSON; v2 wraps it in `trace`);
- `GET /api/search`: a TraceQL subset (api/traceql.py) or Tempo's older `tags=` search,
  answered in Tempo's search JSON;
- `GET /api/search/tags`, `/api/v2/search/tags`, `/api/search/tag/{tag}/values`,
  `/api/v2/search/tag/{tag}/values`;
- `GET /api/echo`.

Times are unix seconds (`start`, `end`), as Tempo takes them; the window defaults to the
API's default window and is bounded by API_MAX_SEARCH_WINDOW. docs/EXPLORER.md describes it.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass
from typing import Any

from aiohttp import web
from opentelemetry.proto.trace.v1.trace_pb2 import TracesData
from psycopg.rows import dict_row

from api import otlp_out, queries, traceql
from api.problems import Problem, bad_parameter, not_found
from api.queries import Where, in_window
from api.routes import POOL, SETTINGS, json_answer
from api.settings import ApiSettings
from api.window import NANOS, Window
from common.logging import get_logger
from common.otlp import SPAN_KINDS, STATUS_CODES

log = get_logger("api.tempo")

PROTOBUF = "application/protobuf"
DEFAULT_LIMIT = 20
DEFAULT_SPSS = 3
TAG_SAMPLE = 10_000  # tags and values come from the newest spans of the window
MAX_TAG_VALUES = 1000
INTRINSICS = ["duration", "kind", "name", "status", "statusMessage", "span:duration", "span:kind", "span:name",
              "span:status", "span:statusMessage"]

RELATED_PER_SPAN = 4  # events and links a Tempo trace answer holds: each at most this many times its spans
TRUNCATED = "X-Observatory-Truncated"


def _trace_id(text: str) -> bytes:
    # Tempo accepts ids shorter than 32 hex digits (64-bit Jaeger/Zipkin ids), zero-padded on the left.
    if not re.fullmatch(r"[0-9a-fA-F]{1,32}", text):
        raise bad_parameter("traceID", "must be 1 to 32 hexadecimal digits")
    raw = bytes.fromhex(text.rjust(32, "0"))
    if raw == bytes(16):
        raise bad_parameter("traceID", "must not be all zeros")
    return raw


def _wants_protobuf(request: web.Request) -> bool:
    accept = request.headers.get("Accept", "")
    return "application/protobuf" in accept or "application/x-protobuf" in accept


@dataclass(frozen=True)
class TempoTrace:
    data: TracesData
    cut: str | None  # what was left out, e.g. "spans=5000 of 300000"; None: the whole trace


async def _trace_data(request: web.Request) -> TempoTrace:
    """The earliest API_TEMPO_TRACE_MAX_SPANS spans of the trace, with at most RELATED_PER_SPAN
    times as many events and as many links: a trace of any size costs a bounded read and
    answer. Tempo answers a trace over its max_bytes_per_trace partial the same way."""
    trace_id = _trace_id(request.match_info["trace_id"])
    max_spans = request.app[SETTINGS].tempo_trace_max_spans
    max_related = RELATED_PER_SPAN * max_spans
    async with request.app[POOL].connection() as conn:
        rows, events, links = await queries.trace_spans(conn, trace_id, None, None, None, max_spans, max_related)
        if not rows:
            raise not_found(f"trace not found: {trace_id.hex()}")
        cut = []
        if len(rows) > max_spans:
            rows = rows[:max_spans]
            cut.append(f"spans={max_spans} of {await queries.trace_span_count(conn, trace_id)}")
    for name, found in (("events", events), ("links", links)):
        if len(found) > max_related:
            del found[max_related:]
            cut.append(f"{name}={max_related}")
    if not cut:
        return TempoTrace(otlp_out.traces_data(rows, events, links), None)
    log.warning("tempo trace answer truncated", trace_id=trace_id.hex(), left=", ".join(cut),
                setting="API_TEMPO_TRACE_MAX_SPANS", limit=max_spans)
    return TempoTrace(otlp_out.traces_data(rows, events, links), ", ".join(cut))


def _partial_message(cut: str) -> str:
    return f"Trace exceeds the limit of API_TEMPO_TRACE_MAX_SPANS, a partial trace is returned: {cut} (the earliest spans)"


def _answer(body: bytes | Any, cut: str | None, protobuf: bool) -> web.Response:
    response = web.Response(body=body, content_type=PROTOBUF) if protobuf else json_answer(body)
    if cut is not None:
        response.headers[TRUNCATED] = cut
    return response


async def get_trace(request: web.Request) -> web.Response:
    trace = await _trace_data(request)
    if _wants_protobuf(request):
        return _answer(trace.data.SerializeToString(), trace.cut, True)
    return _answer(otlp_out.to_json(trace.data), trace.cut, False)


async def get_trace_v2(request: web.Request) -> web.Response:
    trace = await _trace_data(request)
    if _wants_protobuf(request):
        # tempopb.TraceByIDResponse: field 1 is a Trace, whose field 1 (resourceSpans) is
        # TracesData's field 1: the same bytes, one level down. A cut trace also carries
        # field 3 (status: PARTIAL = 1) and field 4 (message), as Tempo sends them.
        body = trace.data.SerializeToString()
        answer = b"\x0a" + _varint(len(body)) + body
        if trace.cut is not None:
            message = _partial_message(trace.cut).encode()
            answer += b"\x18\x01" + b"\x22" + _varint(len(message)) + message
        return _answer(answer, trace.cut, True)
    document: dict[str, Any] = {"trace": otlp_out.to_json(trace.data)}
    if trace.cut is not None:
        document.update(status="PARTIAL", message=_partial_message(trace.cut))
    return _answer(document, trace.cut, False)


def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        byte, n = n & 0x7F, n >> 7
        out.append(byte | (0x80 if n else 0))
        if not n:
            return bytes(out)


def _int_param(request: web.Request, name: str, default: int, maximum: int) -> int:
    raw = request.query.get(name)
    if raw in (None, ""):
        return default
    if not re.fullmatch(r"\d{1,10}", raw) or not 1 <= int(raw) <= maximum:
        raise bad_parameter(name, f"must be an integer from 1 to {maximum}")
    return int(raw)


def _seconds(request: web.Request, name: str) -> int | None:
    raw = request.query.get(name)
    if raw in (None, ""):
        return None
    if not re.fullmatch(r"\d{1,12}", raw):
        raise bad_parameter(name, "must be unix epoch seconds")
    return int(raw) * NANOS


def _window(request: web.Request, settings: ApiSettings) -> Window:
    end = _seconds(request, "end")
    start = _seconds(request, "start")
    end = end if end is not None else time.time_ns()
    start = start if start is not None else max(0, end - settings.default_window * NANOS)
    if start >= end:
        end = start + NANOS  # Tempo's start == end asks for that second
    if end - start > settings.max_search_window * NANOS:
        raise bad_parameter("start", f"the window may span at most {settings.max_search_window} seconds (API_MAX_SEARCH_WINDOW)")
    return Window(start, end)


def _duration(raw: str | None, name: str) -> int | None:
    if not raw:
        return None
    match = re.fullmatch(r"(\d+(?:\.\d+)?)(ns|us|µs|ms|s|m|h)", raw)
    if match is None:
        raise bad_parameter(name, "must be a duration such as 100ms or 2s")
    return traceql._value("duration", raw)[1]


def _conditions(request: web.Request) -> list[traceql.Condition]:
    if request.query.get("q", "").strip():
        return traceql.parse(request.query["q"])
    found = traceql.tag_filters(request.query.get("tags", ""))
    for name, op in (("minDuration", ">="), ("maxDuration", "<=")):
        nanos = _duration(request.query.get(name), name)
        if nanos is not None:
            found.append(traceql.condition("duration", op, ("duration", nanos)))
    return found


def _where(span: Window, conditions: list[traceql.Condition]) -> Where:
    where = Where()
    in_window(where, span)
    for cond in conditions:
        where.add(cond.sql, *cond.args)
    return where


_NEWEST_MATCHES = """
SELECT trace_id, span_id, start_time, start_time_unix_nano FROM spans WHERE {where}
ORDER BY start_time DESC, start_time_unix_nano DESC, trace_id DESC, span_id DESC LIMIT %s
"""
SCAN_CHUNK = 2000  # matching spans read per step, newest first, until `limit` traces are found
_MATCHED_SPANS = """
SELECT trace_id, span_id, name, service_name, start_time_unix_nano, duration_ns,
       row_number() OVER (PARTITION BY trace_id ORDER BY start_time_unix_nano, span_id) AS n,
       count(*) OVER (PARTITION BY trace_id) AS matched
FROM spans WHERE {where} AND trace_id = ANY(%s)
"""
_TRACE_ROOTS = """
SELECT trace_id, min(start_time_unix_nano) AS start_ns, max(end_time_unix_nano) AS end_ns,
       (array_agg(name ORDER BY start_time_unix_nano) FILTER (WHERE parent_span_id IS NULL))[1] AS root_name,
       (array_agg(service_name ORDER BY start_time_unix_nano) FILTER (WHERE parent_span_id IS NULL))[1] AS root_service
FROM spans WHERE trace_id = ANY(%s) GROUP BY trace_id
"""


async def search(request: web.Request) -> web.Response:
    settings = request.app[SETTINGS]
    span = _window(request, settings)
    limit = _int_param(request, "limit", DEFAULT_LIMIT, settings.max_limit)
    spss = _int_param(request, "spss", DEFAULT_SPSS, settings.max_limit)
    where = _where(span, _conditions(request))
    async with request.app[POOL].connection() as conn, conn.cursor(row_factory=dict_row) as cur:
        ids = await _newest_traces(cur, where, limit)
        if not ids:
            return json_answer({"traces": [], "metrics": {"inspectedTraces": 0}})
        await cur.execute(_MATCHED_SPANS.format(where=where.sql()), [*where.args, ids])
        matched = await cur.fetchall()
        await cur.execute(_TRACE_ROOTS, (ids,))
        roots = {bytes(r["trace_id"]): r for r in await cur.fetchall()}
    spans_of: dict[bytes, list[dict[str, Any]]] = {}
    counts: dict[bytes, int] = {}
    for row in matched:
        trace_id = bytes(row["trace_id"])
        counts[trace_id] = row["matched"]
        if row["n"] <= spss:
            spans_of.setdefault(trace_id, []).append(_search_span(row))
    traces = [_search_trace(trace_id, roots[trace_id], spans_of.get(trace_id, []), counts.get(trace_id, 0)) for trace_id in ids]
    return json_answer({"traces": traces, "metrics": {"inspectedTraces": len(ids)}})


async def _newest_traces(cur: Any, where: Where, limit: int) -> list[bytes]:
    """The traces of the newest matching spans, newest first: matching spans are read in
    time-index order a chunk at a time (keyset), so a search for recent traces reads about
    as many spans as it needs instead of grouping every match in the window."""
    found: dict[bytes, None] = {}
    after: tuple[Any, ...] | None = None
    while len(found) < limit:
        step = Where(list(where.conditions), list(where.args))
        if after is not None:
            step.add("start_time <= %s", after[0])
            step.add("(start_time, start_time_unix_nano, trace_id, span_id) < (%s, %s, %s, %s)", *after)
        await cur.execute(_NEWEST_MATCHES.format(where=step.sql()), [*step.args, SCAN_CHUNK])
        rows = await cur.fetchall()
        for row in rows:
            found.setdefault(bytes(row["trace_id"]))
            if len(found) == limit:
                break
        if len(rows) < SCAN_CHUNK:
            break
        last = rows[-1]
        after = (last["start_time"], last["start_time_unix_nano"], bytes(last["trace_id"]), bytes(last["span_id"]))
    return list(found)


def _search_span(row: dict[str, Any]) -> dict[str, Any]:
    return {
        "spanID": bytes(row["span_id"]).hex(),
        "name": row["name"],
        "startTimeUnixNano": str(row["start_time_unix_nano"]),
        "durationNanos": str(row["duration_ns"]),
        "attributes": [{"key": "service.name", "value": {"stringValue": row["service_name"]}}],
    }


def _search_trace(trace_id: bytes, root: dict[str, Any], spans: list[dict[str, Any]], matched: int) -> dict[str, Any]:
    spanset = {"spans": spans, "matched": matched}
    answer: dict[str, Any] = {
        "traceID": trace_id.hex(),
        "startTimeUnixNano": str(root["start_ns"]),
        "durationMs": (root["end_ns"] - root["start_ns"]) // 1_000_000,
        "spanSet": spanset,
        "spanSets": [spanset],
    }
    if root["root_name"] is not None:  # Tempo leaves these out while the root has not arrived
        answer["rootServiceName"] = root["root_service"]
        answer["rootTraceName"] = root["root_name"]
    return answer


_SAMPLE = "(SELECT attributes, resource_attributes FROM spans WHERE {where} ORDER BY start_time DESC LIMIT {n}) AS s"


async def _tag_names(request: web.Request) -> dict[str, list[str]]:
    scope = request.query.get("scope", "all") or "all"
    if scope not in ("all", "span", "resource", "intrinsic"):
        raise bad_parameter("scope", "must be span, resource, intrinsic or all")
    where = _where(_window(request, request.app[SETTINGS]), [])
    found: dict[str, list[str]] = {}
    async with request.app[POOL].connection() as conn, conn.cursor() as cur:
        for name, column in (("resource", "resource_attributes"), ("span", "attributes")):
            if scope in ("all", name):
                await cur.execute(
                    f"SELECT DISTINCT jsonb_object_keys(s.{column}) AS k FROM {_SAMPLE.format(where=where.sql(), n=TAG_SAMPLE)} "
                    f"ORDER BY k LIMIT {MAX_TAG_VALUES}", where.args,
                )
                found[name] = [r[0] for r in await cur.fetchall()]
    if scope in ("all", "intrinsic"):
        found["intrinsic"] = INTRINSICS
    return found


async def tags_v2(request: web.Request) -> web.Response:
    found = await _tag_names(request)
    return json_answer({"scopes": [{"name": name, "tags": tags} for name, tags in found.items()]})


async def tags_v1(request: web.Request) -> web.Response:
    found = await _tag_names(request)
    names = sorted({t for name, tags in found.items() if name != "intrinsic" for t in tags} | {"name", "status"})
    return json_answer({"tagNames": names})


_TYPES = {"string": "string", "number": "float", "boolean": "bool"}


async def _tag_values(request: web.Request, tag: str) -> list[dict[str, str]]:
    settings = request.app[SETTINGS]
    try:
        conditions = traceql.parse(request.query.get("q"))
    except Problem:
        conditions = []  # as Tempo does: an unfinished filter while typing narrows nothing
    where = _where(_window(request, settings), conditions)
    if tag in ("status", "span:status"):
        return [{"type": "keyword", "value": v} for v in STATUS_CODES]
    if tag in ("kind", "span:kind"):
        return [{"type": "keyword", "value": v} for v in SPAN_KINDS]
    column = {"resource.service.name": "service_name", ".service.name": "service_name", "service.name": "service_name",
              "name": "name", "span:name": "name", "statusMessage": "status_message", "span:statusMessage": "status_message"}.get(tag)
    async with request.app[POOL].connection() as conn, conn.cursor() as cur:
        if column is not None:
            await cur.execute(
                f"SELECT DISTINCT {column} FROM (SELECT {column} FROM spans WHERE {where.sql()} AND {column} IS NOT NULL "
                f"ORDER BY start_time DESC LIMIT {TAG_SAMPLE}) AS s ORDER BY 1 LIMIT {MAX_TAG_VALUES}", where.args,
            )
            return [{"type": "string", "value": r[0]} for r in await cur.fetchall()]
        columns = _attribute_columns(tag)
        values: set[tuple[str, str]] = set()
        for attr_column, key in columns:
            await cur.execute(
                f"SELECT DISTINCT jsonb_typeof(v), v #>> '{{}}' FROM (SELECT {attr_column} -> %s AS v FROM spans "
                f"WHERE {where.sql()} AND {attr_column} ? %s ORDER BY start_time DESC LIMIT {TAG_SAMPLE}) AS s "
                f"WHERE jsonb_typeof(v) IN ('string', 'number', 'boolean') LIMIT {MAX_TAG_VALUES}",
                [key, *where.args, key],
            )
            for kind, text in await cur.fetchall():
                values.add((_value_type(kind, text), text))
    return [{"type": kind, "value": text} for kind, text in sorted(values, key=lambda v: v[1])]


def _value_type(kind: str, text: str) -> str:
    if kind == "number":
        return "int" if re.fullmatch(r"-?\d+", text) else "float"
    return _TYPES[kind]


def _attribute_columns(tag: str) -> list[tuple[str, str]]:
    for prefix, columns in (("span.", ["attributes"]), ("resource.", ["resource_attributes"]), (".", ["attributes", "resource_attributes"])):
        if tag.startswith(prefix) and len(tag) > len(prefix):
            return [(c, tag[len(prefix):]) for c in columns]
    return [("attributes", tag), ("resource_attributes", tag)]  # v1 names carry no scope


async def tag_values_v2(request: web.Request) -> web.Response:
    return json_answer({"tagValues": await _tag_values(request, request.match_info["tag"])})


async def tag_values_v1(request: web.Request) -> web.Response:
    return json_answer({"tagValues": [v["value"] for v in await _tag_values(request, request.match_info["tag"])]})


async def echo(request: web.Request) -> web.Response:
    return web.Response(text="echo")


ROUTES = (
    ("/api/traces/{trace_id}", get_trace),
    ("/api/v2/traces/{trace_id}", get_trace_v2),
    ("/api/search", search),
    ("/api/search/tags", tags_v1),
    ("/api/v2/search/tags", tags_v2),
    ("/api/search/tag/{tag}/values", tag_values_v1),
    ("/api/v2/search/tag/{tag}/values", tag_values_v2),
    ("/api/echo", echo),
)


def add_routes(app: web.Application) -> dict[str, str | None]:
    """The Tempo routes; every one needs a credential with the traces scope."""
    for path, handler in ROUTES:
        app.router.add_get(path, handler)
    return {path: "traces" for path, _ in ROUTES}


