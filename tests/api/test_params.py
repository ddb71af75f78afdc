"""What each kind of bad input gets: 400 problem details naming the parameter, nothing else
harmed; plus the defaults and maxima that keep every scan bounded."""

from __future__ import annotations

import time

import pytest
from aiohttp.test_utils import TestClient

from api.params import parse_time
from api.problems import Problem
from tests.api.conftest import AUTH, ClientFactory, get_json
from tests.api.scenario import LLM_A, TRACE_A

W = {"start": "2025-06-01T00:00:00Z", "end": "2025-06-02T00:00:00Z"}

MATRIX = [
    # unknown, repeated, empty
    ("/api/v1/spans", {"servce": "x"}, "servce"),
    ("/api/v1/spans", {"service": ["a", "b"]}, "service"),
    ("/api/v1/spans", {"service": ""}, "service"),
    ("/api/v1/traces", {"attr.user.tier": "gold"}, "attr.user.tier"),  # attribute filters are a span-search feature
    ("/api/v1/metrics", {"limit": "5"}, "limit"),
    ("/api/v1/health", {"x": "1"}, "x"),
    # times and windows
    ("/api/v1/spans", {"start": "yesterday"}, "start"),
    ("/api/v1/spans", {"start": "2025-13-01T00:00:00Z"}, "start"),
    ("/api/v1/spans", {"start": "2025-06-01T00:00:00"}, "start"),  # no offset
    ("/api/v1/spans", {"end": "-5"}, "end"),
    ("/api/v1/spans", {"end": "99999999999999999999"}, "end"),
    ("/api/v1/spans", {"start": W["end"], "end": W["start"]}, "start"),
    ("/api/v1/spans", {"start": "2025-01-01T00:00:00Z", "end": "2025-06-01T00:00:00Z"}, "start"),  # wider than the max
    ("/api/v1/metrics", {"start": "2024-01-01T00:00:00Z", "end": "2025-06-01T00:00:00Z"}, "start"),
    # numbers and ranges
    ("/api/v1/spans", {"limit": "0"}, "limit"),
    ("/api/v1/spans", {"limit": "1001"}, "limit"),
    ("/api/v1/spans", {"limit": "ten"}, "limit"),
    ("/api/v1/spans", {"min_duration_ms": "-1"}, "min_duration_ms"),
    ("/api/v1/spans", {"min_duration_ms": "nan"}, "min_duration_ms"),
    ("/api/v1/spans", {"max_cost_usd": "inf"}, "max_cost_usd"),
    ("/api/v1/spans", {"min_input_tokens": "1.5"}, "min_input_tokens"),
    ("/api/v1/traces", {"min_cost_usd": "lots"}, "min_cost_usd"),
    # enums and ids
    ("/api/v1/spans", {"kind": "CLIENT"}, "kind"),
    ("/api/v1/spans", {"status": "failed"}, "status"),
    ("/api/v1/traces", {"status": "unset"}, "status"),
    ("/api/v1/traces", {"sort": "name"}, "sort"),
    ("/api/v1/spans", {"trace_id": "abc"}, "trace_id"),
    ("/api/v1/spans", {"trace_id": "0" * 32}, "trace_id"),
    ("/api/v1/metrics", {"bucket": "7m"}, "bucket"),
    ("/api/v1/metrics", {"group_by": "user"}, "group_by"),
    (f"/api/v1/spans/{LLM_A}", {"trace_id": "x" * 32}, "trace_id"),
    ("/api/v1/spans/" + "0" * 16, {}, "span_id"),
    # text
    ("/api/v1/spans", {"name": "a\x00b"}, "name"),
    ("/api/v1/spans", {"service": "s" * 513}, "service"),
    ("/api/v1/spans", {"attr.": "x"}, "attr."),
    ("/api/v1/spans", {"name": "x", "name_prefix": "y"}, "name_prefix"),
    ("/api/v1/spans", {f"attr.k{n}": "v" for n in range(11)}, "attr.*"),
    ("/api/v1/spans", {"cursor": "%%%"}, "cursor"),
]


@pytest.mark.parametrize(("path", "params", "parameter"), MATRIX, ids=[f"{p}-{n}" for p, _, n in MATRIX])
async def test_bad_parameters_get_400_naming_them(client: TestClient, path: str, params: dict, parameter: str) -> None:
    query = {**W, **params} if "start" not in params and "end" not in params and "health" not in path and "/spans/" not in path else params
    response = await client.get(path, params=[(k, v) for k, vs in query.items() for v in (vs if isinstance(vs, list) else [vs])], headers=AUTH)
    body = await response.json(content_type=None)
    assert response.status == 400, body
    assert response.content_type == "application/problem+json"
    assert body["type"] == "about:blank" and body["title"] == "Invalid parameter" and body["status"] == 400
    assert body["parameter"] == parameter and body["detail"].startswith(parameter)
    assert body["instance"] == path


async def test_bad_input_leaves_the_next_request_unharmed(client: TestClient) -> None:
    await client.get("/api/v1/spans", params={"start": "\x00" * 10}, headers=AUTH)
    body = await get_json(client, f"/api/v1/traces/{TRACE_A}")
    assert body["span_count"] == 3


async def test_unknown_routes_and_methods_are_problems(client: TestClient) -> None:
    response = await client.get("/api/v1/nothing", headers=AUTH)
    assert response.status == 404 and (await response.json(content_type=None))["status"] == 404
    response = await client.delete(f"/api/v1/traces/{TRACE_A}", headers=AUTH)
    assert response.status == 405 and "GET" in response.headers["Allow"]


async def test_default_window_is_the_last_hour(client: TestClient) -> None:
    before = time.time_ns()
    body = await get_json(client, "/api/v1/spans")
    window = body["window"]
    assert before <= window["end_unix_nano"] <= time.time_ns()
    assert window["end_unix_nano"] - window["start_unix_nano"] == 3600 * 10**9
    assert body["spans"] == []  # the known data is in 2025


async def test_limit_maximum_follows_the_setting(make_client: ClientFactory) -> None:
    client = await make_client(max_limit=10)
    body = await get_json(client, "/api/v1/spans", expect=400, limit="11", **W)
    assert body["detail"] == "limit: must be at most 10, got 11"
    spec = await get_json(client, "/api/v1/openapi.json", headers={})
    limit = next(p for p in spec["paths"]["/api/v1/spans"]["get"]["parameters"] if p["name"] == "limit")
    assert limit["schema"]["maximum"] == 10


@pytest.mark.parametrize(("text", "nanos"), [
    ("2025-06-01T10:00:00Z", 1748772000 * 10**9),
    ("2025-06-01T10:00:00.000000001Z", 1748772000 * 10**9 + 1),
    ("2025-06-01T12:00:00.5+02:00", 1748772000 * 10**9 + 500_000_000),
    ("2025-06-01t10:00:00z", 1748772000 * 10**9),
    ("1748772000000000007", 1748772000 * 10**9 + 7),
])
def test_time_forms(text: str, nanos: int) -> None:
    assert parse_time("start", text) == nanos


def test_times_past_2262_are_refused() -> None:
    with pytest.raises(Problem, match="between 1970 and 2262"):
        parse_time("end", "2300-01-01T00:00:00Z")
