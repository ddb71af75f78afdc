"""opentelemetry-instrumentation-openai-v2 against a local OpenAI-compatible server: the prompt
and completion it sends only as log records show with their span as messages, PII redacted,
and none of the planted values is anywhere in the database.

Two modes of the instrumentation: `event_only` with the latest conventions (one
gen_ai.client.inference.operation.details record) and the older conventions with content
capture on (gen_ai.system.message / gen_ai.user.message / gen_ai.choice records).
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import threading
from collections.abc import Iterator

import psycopg
import pytest
from aiohttp import web

from tests.e2e.conftest import Stack
from tests.support import ROOT, free_port, wait_for

pytestmark = pytest.mark.e2e

COMPLETION = "I see two charges. I will refund the card 4111 1111 1111 1111 and write to jane.doe@example.com."
PLANTED = ("jane.doe@example.com", "4111 1111 1111 1111", "4111111111111111", "203.0.113.7")
MODES = {
    "event_only": {"OTEL_SEMCONV_STABILITY_OPT_IN": "gen_ai_latest_experimental",
                   "OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT": "event_only"},
    "legacy_events": {"OTEL_SEMCONV_STABILITY_OPT_IN": "gen_ai_latest_experimental"},  # content off: only the events carry it
    # The same content on the span instead: the answer must have the same shape.
    "span_only": {"OTEL_SEMCONV_STABILITY_OPT_IN": "gen_ai_latest_experimental",
                  "OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT": "span_only"},
}


async def _chat(request: web.Request) -> web.Response:
    body = await request.json()
    return web.json_response({
        "id": "chatcmpl-test-1", "object": "chat.completion", "created": 1_764_000_000, "model": body["model"] + "-2024-07-18",
        "choices": [{"index": 0, "finish_reason": "stop", "message": {"role": "assistant", "content": COMPLETION}}],
        "usage": {"prompt_tokens": 1200, "completion_tokens": 80, "total_tokens": 1280},
    })


@pytest.fixture
def openai_server() -> Iterator[str]:
    """An OpenAI-compatible chat endpoint on a free port, in a thread of its own."""
    port = free_port()
    loop = asyncio.new_event_loop()
    app = web.Application()
    app.router.add_post("/v1/chat/completions", _chat)
    runner = web.AppRunner(app)
    loop.run_until_complete(runner.setup())
    loop.run_until_complete(web.TCPSite(runner, "127.0.0.1", port).start())
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{port}/v1"
    loop.call_soon_threadsafe(loop.stop)
    thread.join(5)
    loop.run_until_complete(runner.cleanup())
    loop.close()


def _texts(messages: list[dict]) -> str:
    return " ".join(str(part.get("content", part)) for m in messages for part in m["parts"])


@pytest.mark.parametrize("mode", list(MODES))
def test_openai_v2_content_shows_with_its_span_redacted(stack: Stack, openai_server: str, mode: str) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")} | MODES[mode]
    otlp = stack.http_url.rsplit("/v1/", 1)[0]
    done = subprocess.run([sys.executable, "-m", "tests.e2e.apps.openai_chat", openai_server, otlp, *(["legacy"] if mode == "legacy_events" else [])],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    trace_id = done.stdout.strip().splitlines()[-1]

    # event_only: the operation-details record names the chat span; the older events were
    # emitted inside the application's span.
    holder = "answer ticket" if mode == "legacy_events" else "chat gpt-4o-mini"

    def chat_span() -> dict | None:
        trace = stack.trace(trace_id, spans=2)
        (span,) = [s for s in trace["spans"] if s["name"] == holder]
        return span if len([m for m in span["messages"] if m["direction"] == "output"]) == 1 else None

    span = wait_for(chat_span, 20, 0.2, "the span with its messages")
    (chat,) = [s for s in stack.trace(trace_id, spans=2)["spans"] if s["name"] == "chat gpt-4o-mini"]
    # Where the content travelled: only in log records (none on the span), or only on the span.
    if mode == "span_only":
        assert all(m["source"] == "span" for m in span["messages"]) and span["logs"] == []
        assert {"gen_ai.input.messages", "gen_ai.output.messages"} <= set(span["attributes"])
    else:
        assert all(m["source"] == "log" for m in span["messages"])
        assert not {"gen_ai.input.messages", "gen_ai.output.messages"} & set(span["attributes"])
    by_direction = {d: [m for m in span["messages"] if m["direction"] == d] for d in ("system", "input", "output")}
    (system,), (user,), (answer,) = by_direction["system"], by_direction["input"], by_direction["output"]
    assert system["role"] == "system" and user["role"] == "user" and answer["role"] == "assistant"
    assert answer["finish_reason"] == "stop"
    assert _texts([system]) == "You are a support agent. Escalations go to ops [REDACTED:IPV4]."
    assert _texts([user]) == "My email is [REDACTED:EMAIL] and my card is [REDACTED:CARD]. Why was I charged twice?"
    assert _texts([answer]) == "I see two charges. I will refund the card [REDACTED:CARD] and write to [REDACTED:EMAIL]."
    # Usage is priced once, from the chat span: the token metric and the records (the
    # operation-details record carries gen_ai.usage.* too) add nothing to it.
    assert (chat["llm"]["input_tokens"], chat["llm"]["output_tokens"]) == (1200, 80)
    assert chat["llm"]["cost_total_usd"] == pytest.approx(1200 * 0.15e-6 + 80 * 0.6e-6)
    status, usage_answer = stack.api_get("/api/v1/metrics?group_by=service&bucket=1d")
    assert status == 200
    (bot,) = [row for row in usage_answer["rows"] if row["service"] == "support-bot"]
    assert (bot["input_tokens"], bot["output_tokens"]) == (1200, 80)
    assert bot["cost_usd"] == pytest.approx(chat["llm"]["cost_total_usd"])

    with psycopg.connect(stack.database.admin_dsn) as conn:
        # Cumulative points (the SDK exports at flush and again at exit): the latest of each series.
        usage = wait_for(lambda: conn.execute(
            """SELECT sum(total) FROM (SELECT DISTINCT ON (series_id) sum AS total FROM metric_points
               WHERE metric_name = 'gen_ai.client.token.usage' AND service_name = 'support-bot'
               ORDER BY series_id, time_unix_nano DESC) latest""").fetchone()[0], 20, 0.2, "the token usage metric")
        assert usage == 1280.0
        stored = " ".join(row[0] for table in ("spans", "span_events", "logs", "metric_points")
                          for row in conn.execute(f"SELECT t::text FROM {table} t").fetchall())  # noqa: S608 - fixed names
    assert "REDACTED" in stored
    for planted in PLANTED:
        assert planted not in stored
