"""GET /traces/{trace_id} and GET /traces against the known data."""

from __future__ import annotations

import pytest
from aiohttp.test_utils import TestClient

from tests.api.conftest import get_json
from tests.api.data import MS, S
from tests.api.scenario import LLM_A, RETRIEVE_A, ROOT_A, ROOT_B, ROOT_C, T0, TRACE_A, TRACE_B, TRACE_C

WINDOW = {"start": "2025-06-01T09:59:00Z", "end": "2025-06-01T10:10:00Z"}


async def test_trace_in_tree_order_with_events_links_and_summary(client: TestClient) -> None:
    body = await get_json(client, f"/api/v1/traces/{TRACE_A.upper()}")
    assert body["trace_id"] == TRACE_A and body["span_count"] == 3
    # Parent before child; siblings by start time (retrieval started before the LLM call).
    assert [(s["span_id"], s["depth"]) for s in body["spans"]] == [(ROOT_A, 0), (RETRIEVE_A, 1), (LLM_A, 1)]
    llm = body["spans"][2]
    assert llm["start_time_unix_nano"] == T0 + 20 * MS + 123
    assert llm["start_time"] == "2025-06-01T10:00:00.020000123Z"
    assert llm["status"] == {"code": "error", "message": "rate limited"}
    assert [(e["name"], e["attributes"]) for e in llm["events"]] == [
        ("gen_ai.content.prompt", {"gen_ai.prompt": "hello"}), ("exception", {"exception.type": "RateLimitError"}),
    ]
    assert llm["events"][0]["time_unix_nano"] == T0 + 25 * MS + 123
    assert body["spans"][1]["links"] == [{
        "trace_id": TRACE_B, "span_id": ROOT_B, "trace_state": "k=v", "flags": 1,
        "attributes": {"link.kind": "follows"}, "dropped_attributes_count": 0, "exact_values": {},
    }]
    assert body["spans"][0]["events"] == [] and body["spans"][0]["links"] == []
    assert body["summary"] == {
        "root": {"span_id": ROOT_A, "name": "POST /chat", "service_name": "checkout"},
        "start_time": "2025-06-01T10:00:00.000000000Z", "end_time": "2025-06-01T10:00:00.500000000Z",
        "start_time_unix_nano": T0, "end_time_unix_nano": T0 + 500 * MS,
        "duration_ns": 500 * MS, "duration_ms": 500.0,
        "span_count": 3, "error_count": 1, "services": ["checkout", "retriever"],
        "input_tokens": 100, "output_tokens": 50, "cost_usd": 0.002,
    }


async def test_unknown_trace_is_404_and_bad_ids_are_400(client: TestClient) -> None:
    body = await get_json(client, "/api/v1/traces/" + "e" * 32, expect=404)
    assert body["status"] == 404 and "e" * 32 in body["detail"]
    for bad in ("xyz", "0" * 32, "a" * 31, "g" * 32):
        body = await get_json(client, f"/api/v1/traces/{bad}", expect=400)
        assert body["parameter"] == "trace_id"
    body = await get_json(client, f"/api/v1/traces/{TRACE_A}", expect=400, **{"verbose": "1"})
    assert body["parameter"] == "verbose" and body["detail"] == "verbose: unknown parameter"


async def _trace_ids(client: TestClient, **params: str) -> list[str]:
    body = await get_json(client, "/api/v1/traces", **{**WINDOW, **params})
    return [t["trace_id"] for t in body["traces"]]


async def test_trace_search_summaries_newest_first(client: TestClient) -> None:
    body = await get_json(client, "/api/v1/traces", **WINDOW)
    assert [t["trace_id"] for t in body["traces"]] == [TRACE_C, TRACE_B, TRACE_A]
    assert body["next_cursor"] is None
    a = body["traces"][2]
    assert a == {
        "trace_id": TRACE_A, "root": {"span_id": ROOT_A, "name": "POST /chat", "service_name": "checkout"},
        "start_time": "2025-06-01T10:00:00.000000000Z", "end_time": "2025-06-01T10:00:00.500000000Z",
        "start_time_unix_nano": T0, "end_time_unix_nano": T0 + 500 * MS, "duration_ns": 500 * MS, "duration_ms": 500.0,
        "span_count": 3, "error_count": 1, "services": ["checkout", "retriever"],
        "input_tokens": 100, "output_tokens": 50, "cost_usd": 0.002,
    }
    assert body["traces"][0]["root"] == {"span_id": ROOT_C, "name": "POST /chat", "service_name": "checkout"}


@pytest.mark.parametrize(("params", "expected"), [
    ({"service": "retriever"}, [TRACE_A]),
    ({"service": "checkout"}, [TRACE_C, TRACE_A]),
    ({"root_name": "GET /search"}, [TRACE_B]),
    ({"status": "error"}, [TRACE_A]),
    ({"status": "ok"}, [TRACE_C, TRACE_B]),
    ({"min_duration_ms": "500"}, [TRACE_C, TRACE_A]),
    ({"max_duration_ms": "499.9"}, [TRACE_B]),
    ({"model": "gpt-4o-2024-08-06"}, [TRACE_A]),
    ({"model": "claude-3-5-sonnet"}, [TRACE_B]),
    ({"provider": "openai"}, [TRACE_A]),
    ({"min_cost_usd": "0.005"}, [TRACE_B]),
    ({"min_cost_usd": "0.001"}, [TRACE_B, TRACE_A]),
    ({"sort": "start_time"}, [TRACE_A, TRACE_B, TRACE_C]),
    ({"sort": "-duration"}, [TRACE_C, TRACE_A, TRACE_B]),
    ({"sort": "duration"}, [TRACE_B, TRACE_A, TRACE_C]),
    ({"service": "nobody"}, []),
])
async def test_trace_search_filters(client: TestClient, params: dict[str, str], expected: list[str]) -> None:
    assert await _trace_ids(client, **params) == expected


async def test_trace_search_window_edges(client: TestClient) -> None:
    # start inclusive, end exclusive, at nanosecond precision
    assert await _trace_ids(client, start=str(T0 + 60 * S), end=str(T0 + 120 * S)) == [TRACE_B]
    # A trace is in the window when its root span starts there (B's LLM span starts inside
    # this one, its root just before); its summary covers all its spans.
    assert await _trace_ids(client, start=str(T0 + 60 * S + 1), end=str(T0 + 120 * S + 1)) == [TRACE_C]
    body = await get_json(client, "/api/v1/traces", start=str(T0), end=str(T0 + 1))
    assert [(t["trace_id"], t["span_count"], t["end_time_unix_nano"]) for t in body["traces"]] == [(TRACE_A, 3, T0 + 500 * MS)]


async def test_a_trace_without_a_stored_root_is_not_searched(client: TestClient) -> None:
    body = await get_json(client, "/api/v1/traces", start=str(T0 + 60 * S + 1), end=str(T0 + 61 * S))
    assert body["traces"] == []  # only B's LLM span starts here


@pytest.mark.parametrize("sort", ["-start_time", "start_time", "-duration", "duration"])
async def test_trace_pages_have_no_gaps_or_repeats(client: TestClient, sort: str) -> None:
    window = {"start": "2025-06-02T09:00:00Z", "end": "2025-06-02T11:00:00Z"}
    seen: list[str] = []
    cursor = None
    for _ in range(20):
        params = {**window, "limit": "4", "sort": sort, **({"cursor": cursor} if cursor else {})}
        body = await get_json(client, "/api/v1/traces", **params)
        seen += [t["trace_id"] for t in body["traces"]]
        cursor = body["next_cursor"]
        if cursor is None:
            break
    assert len(seen) == 25 and len(set(seen)) == 25
    everything = await get_json(client, "/api/v1/traces", **window, limit="100", sort=sort)
    assert seen == [t["trace_id"] for t in everything["traces"]]
