"""The real stack (collector, writer, API processes) with a key: search what an SDK sent."""

from __future__ import annotations

import json
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import Database
from tests.e2e.conftest import Stack, start_stack
from tests.e2e.sdk import send_llm_trace
from tests.support import http_get

pytestmark = pytest.mark.e2e


@pytest.fixture
def stack(fresh_database: Database, redis_prefix: str, tmp_path: Path) -> Iterator[Stack]:
    running = start_stack(fresh_database, redis_prefix, tmp_path)
    yield running
    running.stop()


def test_searches_find_what_the_sdk_sent(stack: Stack) -> None:
    sent = send_llm_trace("grpc", stack.grpc_target, service="e2e-api")
    body = stack.trace(sent.trace_id, spans=3)
    assert [s["name"] for s in body["spans"]] == ["POST /chat", "retrieve documents", "chat gpt-4o-mini"]
    assert body["summary"]["error_count"] == 1 and body["summary"]["input_tokens"] == 1200
    root = sent.spans["POST /chat"]
    window = f"start={root.start_time - 1}&end={root.end_time + 1}"

    status, spans = stack.api_get(f"/api/v1/spans?{window}&service=e2e-api&attr.gen_ai.usage.input_tokens=1200")
    assert status == 200 and [s["name"] for s in spans["spans"]] == ["chat gpt-4o-mini"]
    status, traces = stack.api_get(f"/api/v1/traces?{window}&status=error&model=gpt-4o-mini")
    assert status == 200 and [t["trace_id"] for t in traces["traces"]] == [sent.trace_id]

    request = urllib.request.Request(
        f"http://127.0.0.1:{stack.api_port}/api/v1/query", method="POST",
        data=json.dumps({"start": root.start_time - 1, "end": root.end_time + 1, "kind": "client"}).encode(),
        headers={**stack.api_headers, "Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=5) as response:
        assert [s["name"] for s in json.loads(response.read())["spans"]] == ["chat gpt-4o-mini"]

    status, _ = http_get(f"http://127.0.0.1:{stack.api_port}/api/v1/spans?{window}")  # no key
    assert status == 401
