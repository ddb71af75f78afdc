"""GET /spans/{span_id}, GET /spans and POST /query against the known data."""

from __future__ import annotations

from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from tests.api.conftest import AUTH, get_json
from tests.api.scenario import LLM_A, LLM_B, PAGER_SPANS, RETRIEVE_A, ROOT_A, ROOT_B, ROOT_C, TRACE_A, TRACE_B

WINDOW = {"start": "2025-06-01T09:59:00Z", "end": "2025-06-01T10:10:00Z"}


async def test_span_by_id_with_and_without_trace_id(client: TestClient) -> None:
    body = await get_json(client, f"/api/v1/spans/{LLM_A}", trace_id=TRACE_A)
    assert body["span_id"] == LLM_A and body["trace_id"] == TRACE_A and body["parent_span_id"] == ROOT_A
    assert [e["name"] for e in body["events"]] == ["gen_ai.content.prompt", "exception"]
    assert body["llm"]["request_model"] == "gpt-4o" and body["llm"]["cost_total_usd"] == 0.002
    assert "depth" not in body
    by_window = await get_json(client, f"/api/v1/spans/{LLM_A}", **WINDOW)
    assert by_window == body
    retrieve = await get_json(client, f"/api/v1/spans/{RETRIEVE_A}", trace_id=TRACE_A)
    assert [(link["trace_id"], link["span_id"]) for link in retrieve["links"]] == [(TRACE_B, ROOT_B)]


async def test_span_by_id_not_found(client: TestClient) -> None:
    body = await get_json(client, f"/api/v1/spans/{LLM_A}", expect=404, trace_id=TRACE_B)
    assert "in trace " + TRACE_B in body["detail"]
    body = await get_json(client, f"/api/v1/spans/{LLM_A}", expect=404)  # default window: the last hour
    assert "give trace_id" in body["detail"]
    body = await get_json(client, "/api/v1/spans/zz", expect=400)
    assert body["parameter"] == "span_id"


async def _span_ids(client: TestClient, **params: Any) -> list[str]:
    body = await get_json(client, "/api/v1/spans", **{**WINDOW, **params})
    return [s["span_id"] for s in body["spans"]]


ALL_NEWEST_FIRST = [ROOT_C, LLM_B, ROOT_B, LLM_A, RETRIEVE_A, ROOT_A]


@pytest.mark.parametrize(("params", "expected"), [
    ({}, ALL_NEWEST_FIRST),
    ({"sort": "start_time"}, ALL_NEWEST_FIRST[::-1]),
    ({"trace_id": TRACE_A}, [LLM_A, RETRIEVE_A, ROOT_A]),
    ({"service": "checkout"}, [ROOT_C, LLM_A, ROOT_A]),
    ({"name": "POST /chat"}, [ROOT_C, ROOT_A]),
    ({"name_prefix": "chat"}, [LLM_B, LLM_A]),
    ({"name_prefix": "POST /"}, [ROOT_C, ROOT_A]),
    ({"name_prefix": "%"}, []),  # LIKE wildcards in the text are literal
    ({"kind": "server"}, [ROOT_C, ROOT_B, ROOT_A]),
    ({"kind": "client"}, [LLM_B, LLM_A]),
    ({"status": "error"}, [LLM_A]),
    ({"status": "ok"}, [ROOT_B]),
    ({"status": "unset", "kind": "server"}, [ROOT_C, ROOT_A]),
    ({"min_duration_ms": "100"}, [ROOT_C, ROOT_B, LLM_A, ROOT_A]),
    ({"min_duration_ms": "80", "max_duration_ms": "100"}, [LLM_B, ROOT_B]),
    ({"model": "gpt-4o"}, [LLM_A]),
    ({"model": "gpt-4o-2024-08-06"}, [LLM_A]),
    ({"provider": "anthropic"}, [LLM_B]),
    ({"min_input_tokens": "150"}, [LLM_B]),
    ({"max_input_tokens": "150"}, [LLM_A]),
    ({"min_output_tokens": "50"}, [LLM_A]),
    ({"max_output_tokens": "49"}, [LLM_B]),
    ({"min_total_tokens": "150", "max_total_tokens": "150"}, [LLM_A]),
    ({"min_cost_usd": "0.005"}, [LLM_B]),
    ({"max_cost_usd": "0.005"}, [LLM_A]),
    ({"attr.user.tier": "gold"}, [LLM_A, ROOT_A]),
    ({"attr.http.route": "/chat", "attr.user.tier": "gold"}, [ROOT_A]),
    ({"attr.http.status_code": "429"}, [LLM_A]),  # the query text 429 also matches the integer 429
    ({"attr.cached": "true"}, [LLM_B]),
    ({"attr.retrieval.top_k": "6"}, []),
    ({"has_attr": "retrieval.top_k"}, [RETRIEVE_A]),
    ({"has_attr": ["http.route", "user.tier"]}, [ROOT_B, ROOT_A]),
])
async def test_span_search_filters(client: TestClient, params: dict[str, Any], expected: list[str]) -> None:
    assert await _span_ids(client, **params) == expected


async def test_post_query_takes_the_same_filters_as_json(client: TestClient) -> None:
    body = {**WINDOW, "service": "checkout", "attr.http.status_code": 429, "min_input_tokens": 10, "limit": 5}
    response = await client.post("/api/v1/query", json=body, headers=AUTH)
    answer = await response.json()
    assert response.status == 200, answer
    assert [s["span_id"] for s in answer["spans"]] == [LLM_A]
    # In JSON the attribute value is typed: the string "429" is not the integer 429.
    response = await client.post("/api/v1/query", json={**WINDOW, "attr.http.status_code": "429"}, headers=AUTH)
    assert (await response.json())["spans"] == []
    response = await client.post("/api/v1/query", json={**WINDOW, "has_attr": ["retrieval.top_k"]}, headers=AUTH)
    assert [s["span_id"] for s in (await response.json())["spans"]] == [RETRIEVE_A]


@pytest.mark.parametrize(("body", "content_type", "status", "parameter"), [
    (b"{not json", "application/json", 400, "body"),
    (b"[1, 2]", "application/json", 400, "body"),
    (b'{"limit": "many"}', "application/json", 400, "limit"),
    (b'{"bogus": 1}', "application/json", 400, "bogus"),
    (b'{"service": {"a": 1}}', "application/json", 400, "service"),
    (b'{"attr.x": [1]}', "application/json", 400, "attr.x"),
    (b'{"service": "x"}', "text/plain", 415, None),
])
async def test_post_query_bad_bodies(client: TestClient, body: bytes, content_type: str, status: int, parameter: str | None) -> None:
    response = await client.post("/api/v1/query", data=body, headers={**AUTH, "Content-Type": content_type})
    problem = await response.json(content_type=None)
    assert response.status == status and response.content_type == "application/problem+json"
    assert problem.get("parameter") == parameter


async def test_post_query_body_too_large(client: TestClient) -> None:
    response = await client.post("/api/v1/query", data=b'{"service": "' + b"x" * 70_000 + b'"}',
                                 headers={**AUTH, "Content-Type": "application/json"})
    assert response.status == 413 and (await response.json(content_type=None))["status"] == 413


@pytest.mark.parametrize("sort", ["-start_time", "start_time"])
@pytest.mark.parametrize("method", ["GET", "POST"])
async def test_span_pages_have_no_gaps_or_repeats(client: TestClient, sort: str, method: str) -> None:
    window = {"start": "2025-06-02T09:00:00Z", "end": "2025-06-02T11:00:00Z", "sort": sort}
    seen: list[str] = []
    cursor = None
    for _ in range(20):
        params = {**window, "limit": "3", **({"cursor": cursor} if cursor else {})}
        if method == "GET":
            body = await get_json(client, "/api/v1/spans", **params)
        else:
            body = await (await client.post("/api/v1/query", json=params, headers=AUTH)).json()
        assert len(body["spans"]) <= 3
        seen += [s["span_id"] for s in body["spans"]]
        cursor = body["next_cursor"]
        if cursor is None:
            break
    expected = [s.span_id for s in sorted(PAGER_SPANS, key=lambda s: (s.start_ns, s.trace_id), reverse=sort.startswith("-"))]
    assert seen == expected


async def test_a_cursor_only_works_with_its_own_parameters(client: TestClient) -> None:
    window = {"start": "2025-06-02T09:00:00Z", "end": "2025-06-02T11:00:00Z"}
    first = await get_json(client, "/api/v1/spans", **window, limit="2")
    body = await get_json(client, "/api/v1/spans", expect=400, **window, service="pager", cursor=first["next_cursor"])
    assert body["parameter"] == "cursor" and "other parameters" in body["detail"]
    body = await get_json(client, "/api/v1/spans", expect=400, cursor="bm90IGEgY3Vyc29y")
    assert body["parameter"] == "cursor"
    # The page size may change between pages.
    second = await get_json(client, "/api/v1/spans", **window, limit="5", cursor=first["next_cursor"])
    assert len(second["spans"]) == 5
