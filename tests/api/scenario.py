"""The known data the API tests read: each group of tests has its own stretch of time.

- TRACES (2025-06-01 10:00): three traces for trace, span and trace-search tests.
- PAGER (2025-06-02 10:00): 25 one-span traces for pagination, two sharing a start time.
- USAGE (2025-06-03 10:00): spans at the window edges plus rollup rows in between.
"""

from __future__ import annotations

from decimal import Decimal

import psycopg

from tests.api.data import MS, S, Rollup, Span, insert_event, insert_link, insert_rollups, insert_spans, ns

T0 = ns("2025-06-01T10:00:00Z")
TRACE_A, TRACE_B, TRACE_C = "a" * 32, "b" * 32, "c" * 32
ROOT_A, RETRIEVE_A, LLM_A = "a1" * 8, "a2" * 8, "a3" * 8
ROOT_B, LLM_B = "b1" * 8, "b2" * 8
ROOT_C = "c1" * 8

TRACE_SPANS = [
    # Trace A, stored out of tree order on purpose: the LLM call starts before retrieval ends.
    Span(TRACE_A, LLM_A, "chat gpt-4o", T0 + 20 * MS + 123, 300 * MS, "checkout", ROOT_A, kind=3, status_code=2,
         status_message="rate limited", llm_provider="openai", llm_request_model="gpt-4o",
         llm_response_model="gpt-4o-2024-08-06", input_tokens=100, output_tokens=50, total_tokens=150,
         cost_total_usd=Decimal("0.002"), attributes={"gen_ai.request.model": "gpt-4o", "http.status_code": 429, "user.tier": "gold"}),
    Span(TRACE_A, ROOT_A, "POST /chat", T0, 500 * MS, "checkout", kind=2, attributes={"http.route": "/chat", "user.tier": "gold"}),
    Span(TRACE_A, RETRIEVE_A, "retrieve documents", T0 + 10 * MS, 40 * MS, "retriever", ROOT_A,
         attributes={"retrieval.top_k": 5}),
    Span(TRACE_B, ROOT_B, "GET /search", T0 + 60 * S, 100 * MS, "search", kind=2, status_code=1,
         attributes={"http.route": "/search", "user.tier": "free"}),
    Span(TRACE_B, LLM_B, "chat claude", T0 + 60 * S + 5 * MS, 80 * MS, "search", ROOT_B, kind=3, llm_provider="anthropic",
         llm_request_model="claude-3-5-sonnet", input_tokens=200, output_tokens=20, total_tokens=220,
         cost_total_usd=Decimal("0.01"), attributes={"gen_ai.request.model": "claude-3-5-sonnet", "cached": True}),
    Span(TRACE_C, ROOT_C, "POST /chat", T0 + 120 * S, 2 * S, "checkout", kind=2, attributes={"http.route": "/chat"}),
]

P0 = ns("2025-06-02T10:00:00Z")
PAGER_SPANS = [
    Span(f"{n + 1:032x}", f"{n + 1:016x}", f"job {n:02d}", P0 + (n if n != 13 else 12) * S, (n + 1) * MS, "pager")
    for n in range(25)
]  # job 12 and job 13 start at the same nanosecond: the keyset must break the tie

U0 = ns("2025-06-03T10:00:00Z")
USAGE_SPANS = [
    # Edges of the window [U0 + 30 s, U0 + 5 min 30 s): raw spans.
    Span("d1" * 16, "d1" * 8, "chat", U0 + 40 * S, 100 * MS, "bot", llm_provider="openai", llm_request_model="gpt-4o",
         input_tokens=10, output_tokens=5, cost_total_usd=Decimal("0.5")),
    Span("d2" * 16, "d2" * 8, "chat", U0 + 320 * S, 300 * MS, "bot", status_code=2, llm_provider="openai",
         llm_response_model="gpt-4o", input_tokens=20, output_tokens=7, cost_total_usd=Decimal("0.25")),
    Span("d3" * 16, "d3" * 8, "index", U0 + 50 * S, 50 * MS, "indexer"),
    # Outside the window: must not count.
    Span("d4" * 16, "d4" * 8, "chat", U0 + 10 * S, 100 * MS, "bot", llm_request_model="gpt-4o", input_tokens=1000),
    # Inside the rollup minutes: counted by the rollups only (these rows are not in them on
    # purpose, so a test can tell which source answered), but present for the percentiles.
    Span("d5" * 16, "d5" * 8, "chat", U0 + 130 * S, 200 * MS, "bot", llm_request_model="gpt-4o"),
]
USAGE_ROLLUPS = [
    Rollup(U0 + 60 * S, "bot", "gpt-4o", "openai", 4, 1, 400, 100, Decimal("1.5"), 800 * MS, 400 * MS),
    Rollup(U0 + 120 * S, "bot", "gpt-4o", "openai", 6, 0, 600, 60, Decimal("2"), 600 * MS, 150 * MS),
    Rollup(U0 + 120 * S, "bot", "claude-3-5-sonnet", "anthropic", 2, 2, 50, 10, Decimal("0.1"), 100 * MS, 60 * MS),
    Rollup(U0 + 240 * S, "indexer", None, None, 3, 0, 0, 0, Decimal(0), 30 * MS, 20 * MS),
    Rollup(U0 + 360 * S, "bot", "gpt-4o", "openai", 99, 99, 9, 9, Decimal(9), 9, 9),  # after the window
]


def seed(conn: psycopg.Connection) -> None:
    insert_spans(conn, TRACE_SPANS + PAGER_SPANS + USAGE_SPANS)
    llm_a = TRACE_SPANS[0]
    insert_event(conn, llm_a, 0, llm_a.start_ns + 5 * MS, "gen_ai.content.prompt", {"gen_ai.prompt": "hello"})
    insert_event(conn, llm_a, 1, llm_a.start_ns + 250 * MS, "exception", {"exception.type": "RateLimitError"})
    insert_link(conn, TRACE_SPANS[2], 0, TRACE_B, ROOT_B)
    insert_rollups(conn, USAGE_ROLLUPS)
