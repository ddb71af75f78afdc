"""The real OpenTelemetry JavaScript SDK's three OTLP exporters (gRPC, HTTP protobuf, HTTP
JSON) against the real stack: ids, parent, kind, status, attributes, events, LLM columns,
cost and redaction as a Node.js application would see them.

Needs node and `npm ci --prefix tests/e2e/node` (make test does it when npm is there);
skips, saying so, without them.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.e2e.conftest import Stack

pytestmark = pytest.mark.e2e

NODE_DIR = Path(__file__).resolve().parent / "node"


def send(protocol: str, endpoint: str, service: str) -> dict:
    node = shutil.which("node")
    if node is None:
        pytest.skip("node is not installed: the JavaScript SDK test needs it")
    if not (NODE_DIR / "node_modules" / "@opentelemetry" / "sdk-trace-base").is_dir():
        pytest.skip("the JavaScript SDK is not installed: run `npm ci --prefix tests/e2e/node`")
    done = subprocess.run([node, str(NODE_DIR / "send_trace.js"), protocol, endpoint, service],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


@pytest.mark.parametrize("protocol", ["grpc", "proto", "json"])
def test_javascript_sdk_trace_round_trips(stack: Stack, protocol: str) -> None:
    endpoint = f"http://127.0.0.1:{stack.grpc_port}" if protocol == "grpc" else stack.http_url
    sent = send(protocol, endpoint, f"node-{protocol}")
    body = stack.trace(sent["trace_id"], spans=2)
    spans = {s["name"]: s for s in body["spans"]}
    root, llm = spans["POST /ask"], spans["chat claude-sonnet-4-5"]
    assert root["span_id"] == sent["root"]["span_id"] and root["parent_span_id"] is None
    assert llm["span_id"] == sent["llm"]["span_id"] and llm["parent_span_id"] == root["span_id"]
    assert (root["kind"], llm["kind"]) == ("server", "client")
    assert llm["status"] == {"code": "error", "message": "overloaded"}
    assert llm["service_name"] == f"node-{protocol}"
    assert llm["resource_attributes"]["telemetry.sdk.language"] == "nodejs"
    assert llm["attributes"]["app.tags"] == ["node", "e2e"]
    assert [(e["name"], e["attributes"]) for e in llm["events"]] == [("retry", {"attempt": 2})]
    assert (llm["llm"]["provider"], llm["llm"]["request_model"]) == ("anthropic", "claude-sonnet-4-5")
    assert (llm["llm"]["input_tokens"], llm["llm"]["output_tokens"]) == (2000, 500)
    assert llm["llm"]["cost_total_usd"] and llm["llm"]["cost_total_usd"] > 0
    prompt = llm["attributes"]["gen_ai.prompt.0.content"]
    assert "555 0199" not in prompt and "ada.lovelace" not in prompt
    assert "[REDACTED:PHONE]" in prompt and "[REDACTED:EMAIL]" in prompt
