"""Requests made to hurt: each is a 400 problem naming what is wrong (or a bounded answer),
and the API keeps serving everyone else afterwards."""

from __future__ import annotations

import asyncio
import base64
import json
import time
from collections.abc import Iterator
from typing import Any

import orjson
import pytest
from aiohttp.test_utils import TestClient

from api.params import parse_time
from api.problems import Problem
from tests.api.conftest import AUTH, KEY_ALL, ClientFactory, get_json, token
from tests.api.scenario import TRACE_A, TRACE_B
from tests.conftest import Database, create_database, drop_database

SPANS_WINDOW = {"start": "2025-06-01T00:00:00Z", "end": "2025-06-03T00:00:00Z"}  # the trace and pager spans
USAGE_WINDOW = "start=2025-06-03T10:00:30Z&end=2025-06-03T10:05:30Z"


async def still_serving(client: TestClient) -> None:
    assert (await client.get("/api/v1/health")).status == 200
    body = await get_json(client, f"/api/v1/traces/{TRACE_A}")
    assert body["trace_id"] == TRACE_A


async def problem(client: TestClient, path: str, params: Any = None, expect: int = 400, **kwargs: Any) -> dict[str, Any]:
    response = await client.get(path, params=params, headers=kwargs.pop("headers", AUTH), **kwargs)
    body = await response.json(content_type=None)
    assert response.status == expect, body
    assert response.content_type == "application/problem+json" and body["status"] == expect
    return body


@pytest.mark.parametrize(("name", "value"), [
    ("start", "0001-01-01T00:00:00+01:00"),  # before year 1 in UTC
    ("end", "9999-12-31T23:59:59-23:59"),  # after year 9999 in UTC
    ("start", "0001-01-01T00:00:00Z"),
    ("end", "9999-12-31T23:59:59.999999999Z"),
    ("start", "1969-12-31T23:59:59Z"),
    ("end", "2262-04-11T23:47:16.854775808Z"),  # one nanosecond past 2^63 - 1
])
@pytest.mark.parametrize("path", ["/api/v1/spans", "/api/v1/traces", "/api/v1/metrics", "/api/v1/services"])
async def test_times_out_of_range_are_400_naming_the_parameter(client: TestClient, path: str, name: str, value: str) -> None:
    body = await problem(client, path, {name: value})
    assert body["parameter"] == name and body["detail"].startswith(f"{name}: ")
    await still_serving(client)


def test_the_edges_of_the_time_range_parse_exactly() -> None:
    assert parse_time("start", "1970-01-01T00:00:00Z") == 0
    assert parse_time("start", "1970-01-01T01:00:00+01:00") == 0
    assert parse_time("end", "2262-04-11T23:47:16.854775807Z") == 2**63 - 1
    for raw in ("0001-01-01T00:00:00+01:00", "9999-12-31T23:59:59-23:59"):
        with pytest.raises(Problem) as caught:
            parse_time("t", raw)
        assert caught.value.status == 400


def _tamper(cursor: str) -> Iterator[str]:
    payload, _, signature = cursor.partition(".")
    doc = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    forged = dict(doc, w=[0, 2**63 - 1])
    yield base64.urlsafe_b64encode(json.dumps(forged).encode()).decode().rstrip("=") + "." + signature  # changed payload
    yield payload  # signature dropped
    yield payload + "." + ("A" if signature[0] != "A" else "B") + signature[1:]  # signature changed
    yield base64.urlsafe_b64encode(json.dumps(doc).encode()).decode().rstrip("=")  # the old unsigned format
    unsigned_bad_key = dict(doc, k=[-1, "zz", "yy"])
    yield base64.urlsafe_b64encode(json.dumps(unsigned_bad_key).encode()).decode().rstrip("=")
    yield "." + signature
    yield "%%%.%%%"


async def test_tampered_and_forged_cursors_are_400(client: TestClient) -> None:
    first = await get_json(client, "/api/v1/spans", **SPANS_WINDOW, service="pager", limit="2")
    cursor = first["next_cursor"]
    assert cursor is not None
    for bad in _tamper(cursor):
        body = await problem(client, "/api/v1/spans", {**SPANS_WINDOW, "service": "pager", "limit": "2", "cursor": bad})
        assert body["parameter"] == "cursor", bad
    await still_serving(client)
    second = await get_json(client, "/api/v1/spans", **SPANS_WINDOW, service="pager", limit="2", cursor=cursor)
    assert len(second["spans"]) == 2 and second["spans"][0]["span_id"] not in {s["span_id"] for s in first["spans"]}


async def test_trace_search_cursors_are_signed_too(client: TestClient) -> None:
    window = {"start": "2025-06-01T09:59:00Z", "end": "2025-06-01T10:10:00Z", "limit": "1"}
    for sort in ("-start_time", "duration"):
        first = await get_json(client, "/api/v1/traces", **window, sort=sort)
        for bad in list(_tamper(first["next_cursor"]))[:4]:
            body = await problem(client, "/api/v1/traces", {**window, "sort": sort, "cursor": bad})
            assert body["parameter"] == "cursor"
        assert (await get_json(client, "/api/v1/traces", **window, sort=sort, cursor=first["next_cursor"]))["traces"]


async def test_replicas_with_the_same_settings_accept_each_others_cursors(make_client: ClientFactory) -> None:
    one, two = await make_client(), await make_client()  # JWT_SECRET shared, CURSOR_SECRET unset: derived from it
    other = await make_client(cursor_secret="another-cursor-secret-of-32-bytes-or-more")
    cursor = (await get_json(one, "/api/v1/spans", **SPANS_WINDOW, service="pager", limit="3"))["next_cursor"]
    page = await get_json(two, "/api/v1/spans", **SPANS_WINDOW, service="pager", limit="3", cursor=cursor)
    assert len(page["spans"]) == 3
    body = await problem(other, "/api/v1/spans", {**SPANS_WINDOW, "service": "pager", "limit": "3", "cursor": cursor})
    assert body["parameter"] == "cursor" and "CURSOR_SECRET" in body["detail"]


@pytest.mark.parametrize(("path", "name", "value", "most"), [
    ("/api/v1/spans", "has_attr", "k", 10),
    ("/api/v1/metrics", "group_by", "service", 2),
])
async def test_every_list_parameter_has_a_maximum(client: TestClient, path: str, name: str, value: str, most: int) -> None:
    assert (await client.get(path, params=[(name, value)] * most + list(SPANS_WINDOW.items()), headers=AUTH)).status == 200
    body = await problem(client, path, [(name, value)] * (most + 1) + list(SPANS_WINDOW.items()))
    assert body["parameter"] == name and f"at most {most}" in body["detail"]
    started = time.monotonic()
    body = await problem(client, path, [(name, f"{value}{n}") for n in range(400)])  # as many as fit in a request line
    assert body["parameter"] == name and time.monotonic() - started < 2  # refused before any query
    await still_serving(client)


async def post(client: TestClient, body: bytes) -> tuple[int, dict[str, Any]]:
    response = await client.post("/api/v1/query", data=body, headers={**AUTH, "Content-Type": "application/json"})
    return response.status, await response.json(content_type=None)


@pytest.mark.parametrize("field", ["service", "has_attr", "attr.user.tier", "limit"])
@pytest.mark.parametrize("depth", [3, 300, 1100])
async def test_deeply_nested_bodies_are_400(client: TestClient, field: str, depth: int) -> None:
    nested = b"[" * depth + b"]" * depth
    status, body = await post(client, b'{"%s": %s}' % (field.encode(), nested))
    assert status == 400 and body["parameter"] in ("body", field), body
    objects = b'{"a":' * depth + b"1" + b"}" * depth
    status, body = await post(client, b'{"%s": %s}' % (field.encode(), objects))
    assert status == 400 and body["parameter"] in ("body", field), body
    await still_serving(client)
    status, body = await post(client, orjson.dumps({**SPANS_WINDOW, "has_attr": ["user.tier"]}))
    assert status == 200 and TRACE_A in {s["trace_id"] for s in body["spans"]}


async def test_a_list_in_a_body_has_the_same_maximum(client: TestClient) -> None:
    status, body = await post(client, orjson.dumps({**SPANS_WINDOW, "has_attr": [f"k{n}" for n in range(2000)]}))
    assert status == 400 and body["parameter"] == "has_attr"


async def test_cache_keys_are_the_parsed_request(client: TestClient) -> None:
    """An encoded & inside a value must not fill the cache entry of the two-parameter request."""
    base = "/api/v1/metrics?bucket=1m&" + USAGE_WINDOW
    smuggled = await client.get(base + "&model=gpt-4o%26provider%3Dopenai", headers=AUTH)
    assert smuggled.status == 200 and (await smuggled.json())["rows"] == []  # no model has that name
    honest = await client.get(base + "&model=gpt-4o&provider=openai", headers=AUTH)
    assert honest.headers["Cache-Status"] == "observatory-api; fwd=miss"
    rows = (await honest.json())["rows"]
    assert sum(r["request_count"] for r in rows) == 4 + 6 + 2  # rollup minutes + the edge spans d1, d2
    # The same request spelled differently (order, default given explicitly) is one entry.
    again = await client.get("/api/v1/metrics?provider=openai&" + USAGE_WINDOW + "&model=gpt-4o&bucket=1m", headers=AUTH)
    assert again.headers["Cache-Status"] == "observatory-api; hit" and (await again.json())["rows"] == rows


@pytest.mark.parametrize(("claims", "accepted"), [
    ({"expires_in": 3000}, True),
    ({"expires_in": 2 * 86400}, False),  # no iat: measured from now
    ({"expires_in": 600, "iat": int(time.time()) - 7200}, False),  # issued for 2 h 10 min
    ({"expires_in": 1800, "iat": int(time.time())}, True),
])
async def test_jwts_have_a_maximum_lifetime(make_client: ClientFactory, claims: dict[str, Any], accepted: bool) -> None:
    client = await make_client(jwt_max_lifetime=3600)
    response = await client.get(f"/api/v1/traces/{TRACE_A}", headers={"Authorization": f"Bearer {token(**claims)}"})
    assert response.status == (200 if accepted else 401)
    if not accepted:
        assert "JWT_MAX_LIFETIME" in (await response.json(content_type=None))["detail"]
    unlimited = await make_client(jwt_max_lifetime=0)
    assert (await unlimited.get(f"/api/v1/traces/{TRACE_A}", headers={"Authorization": f"Bearer {token(**claims)}"})).status == 200


BIG_TRACE = "b1" * 16
BIG_SPANS = 5000


@pytest.fixture(scope="module")
def big_trace_database() -> Iterator[Database]:
    """One trace of BIG_SPANS spans (a root, then a chain of children), events on some."""
    db = create_database("obs_api_big")
    with db.connect() as conn:
        conn.execute("""
            INSERT INTO spans (trace_id, span_id, parent_span_id, name, service_name, start_time, end_time,
                               start_time_unix_nano, end_time_unix_nano, duration_ns, input_tokens, cost_total_usd)
            SELECT %(trace)s, int8send(n), CASE WHEN n > 1 THEN int8send(1) END, 'step ' || n, 'svc' || (n %% 3),
                   to_timestamp(1748772000 + n / 1000.0), to_timestamp(1748772000 + n / 1000.0 + 1),
                   (1748772000::bigint * 1000000 + n * 1000) * 1000, (1748772001::bigint * 1000000 + n * 1000) * 1000,
                   1000000000, 2, 0.001
            FROM generate_series(1, %(n)s) AS n""", {"trace": bytes.fromhex(BIG_TRACE), "n": BIG_SPANS})
        conn.execute("""
            INSERT INTO span_events (trace_id, span_id, span_start_time, event_index, time, time_unix_nano, name)
            SELECT trace_id, span_id, start_time, 0, start_time, start_time_unix_nano, 'tick'
            FROM spans WHERE trace_id = %s AND ('x' || encode(span_id, 'hex'))::bit(64)::bigint %% 1000 = 0""", (bytes.fromhex(BIG_TRACE),))
    yield db
    drop_database(db.name)


@pytest.mark.parametrize("cache_ttl", [30, 0])  # later pages' summary from the cache, or computed again
async def test_a_huge_trace_is_paged(make_client: ClientFactory, big_trace_database: Database, cache_ttl: int) -> None:
    client = await make_client(big_trace_database, trace_page_spans=1000, cache_ttl=cache_ttl)
    path = f"/api/v1/traces/{BIG_TRACE}"
    seen: list[str] = []
    summaries = []
    cursor = None
    pages = 0
    while True:
        response = await client.get(path, params={"cursor": cursor} if cursor else None, headers=AUTH)
        assert response.status == 200
        assert len(await response.read()) < 2_000_000  # one page, not the trace
        body = await response.json()
        pages += 1
        assert len(body["spans"]) <= 1000 and body["span_count"] == BIG_SPANS
        seen += [s["span_id"] for s in body["spans"]]
        summaries.append(body["summary"])
        assert all(len(s["events"]) == (1 if int(s["span_id"], 16) % 1000 == 0 else 0) for s in body["spans"])
        cursor = body["next_cursor"]
        if cursor is None:
            break
    assert pages == 5 and len(seen) == len(set(seen)) == BIG_SPANS
    assert all(s == summaries[0] for s in summaries)
    assert summaries[0]["span_count"] == BIG_SPANS and summaries[0]["input_tokens"] == 2 * BIG_SPANS
    assert summaries[0]["root"]["span_id"] == f"{1:016x}" and summaries[0]["services"] == ["svc0", "svc1", "svc2"]
    # The first page is in tree order: the root, then its children at depth 1.
    first = await get_json(client, path, limit="3")
    assert [(s["span_id"], s["depth"]) for s in first["spans"]] == [(f"{n:016x}", min(n - 1, 1)) for n in (1, 2, 3)]


async def test_trace_paging_refuses_bad_limits_and_foreign_cursors(make_client: ClientFactory, big_trace_database: Database) -> None:
    client = await make_client(big_trace_database, trace_page_spans=1000)
    path = f"/api/v1/traces/{BIG_TRACE}"
    assert (await problem(client, path, {"limit": "1001"}))["parameter"] == "limit"
    assert (await problem(client, path, {"limit": "0"}))["parameter"] == "limit"
    cursor = (await get_json(client, path, limit="10"))["next_cursor"]
    for bad in list(_tamper(cursor))[:4]:
        assert (await problem(client, path, {"cursor": bad}))["parameter"] == "cursor"
    # A cursor pages only the trace it was made for.
    assert (await problem(client, f"/api/v1/traces/{TRACE_B}", {"cursor": cursor}))["parameter"] == "cursor"


async def test_health_answers_while_huge_traces_are_read(make_client: ClientFactory, big_trace_database: Database) -> None:
    client = await make_client(big_trace_database, trace_page_spans=2000)
    path = f"/api/v1/traces/{BIG_TRACE}"
    reads = [asyncio.ensure_future(client.get(path, headers=AUTH)) for _ in range(4)]
    started = time.monotonic()
    health = await client.get("/api/v1/health")
    health_seconds = time.monotonic() - started
    responses = await asyncio.gather(*reads)
    assert health.status == 200 and all(r.status == 200 for r in responses)
    assert health_seconds < 2, health_seconds
    for response in responses:
        response.release()
    assert (await client.get("/api/v1/health", headers={"X-API-Key": KEY_ALL})).status == 200
