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

import psycopg
import pytest

from tests.e2e.conftest import Stack
from tests.support import wait_for

pytestmark = pytest.mark.e2e

NODE_DIR = Path(__file__).resolve().parent / "node"


def send(protocol: str, endpoint: str, service: str, script: str = "send_trace.js") -> dict:
    node = shutil.which("node")
    if node is None:
        pytest.skip("node is not installed: the JavaScript SDK test needs it")
    if not (NODE_DIR / "node_modules" / "@opentelemetry" / "sdk-logs").is_dir():
        pytest.skip("the JavaScript SDK is not installed: run `npm ci --prefix tests/e2e/node`")
    done = subprocess.run([node, str(NODE_DIR / script), protocol, endpoint, service],
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


@pytest.mark.parametrize("protocol", ["grpc", "proto", "json"])
def test_javascript_sdk_logs_and_metrics_round_trip(stack: Stack, protocol: str) -> None:
    """The JavaScript SDK's log and metric exporters: what send_signals.js says it sent is
    what the log search answers and what the metric points hold."""
    base = f"http://127.0.0.1:{stack.grpc_port}" if protocol == "grpc" else stack.http_url.rsplit("/v1/", 1)[0]
    service = f"node-signals-{protocol}"
    sent = send(protocol, base, service, "send_signals.js")

    def found() -> list[dict] | None:
        status, page = stack.api_get(f"/api/v1/logs?service={service}")
        assert status == 200, page
        return page["logs"] if len(page["logs"]) == 2 else None  # type: ignore[index]

    shown = sorted(wait_for(found, 20, 0.2, "the JavaScript SDK's two log records"), key=lambda r: r["time_unix_nano"])
    for record, log in zip(sent["logs"], shown):
        assert log["time_unix_nano"] == int(record["time_unix_nano"])
        assert (log["severity_number"], log["severity_text"]) == (record["severityNumber"], record["severityText"])
        assert log["event_name"] == record.get("eventName")
        assert log["body"] == record["body"] and log["attributes"] == record["attributes"]
        assert log["service_name"] == service and log["resource_attributes"]["deployment.environment"] == "node-test"
        assert log["scope"]["name"] == "tests.e2e.node.logs" and log["scope"]["version"] == "2.1.0"

    def points() -> dict[str, tuple] | None:
        with psycopg.connect(stack.database.admin_dsn) as conn:
            rows = conn.execute(
                """SELECT DISTINCT ON (metric_name) metric_name, metric_type, value, count, sum, min, max, attributes, scope_name
                   FROM metric_points WHERE service_name = %s ORDER BY metric_name, time_unix_nano DESC""", (service,)).fetchall()
        return {r[0]: r[1:] for r in rows} if len(rows) == 3 else None

    stored = wait_for(points, 20, 0.2, "the JavaScript SDK's three metrics")
    expected = sent["metrics"]
    assert stored["app.calls"][:2] == ("sum", float(expected["calls"])) and stored["app.calls"][6] == {"route": "/chat"}
    assert stored["app.queue.depth"][:2] == ("gauge", float(expected["depth"]))
    tokens = stored["gen_ai.client.token.usage"]
    assert tokens[0] == "histogram" and tokens[2:6] == (
        expected["tokens"]["count"], float(expected["tokens"]["sum"]), float(expected["tokens"]["min"]), float(expected["tokens"]["max"]))
    assert {row[7] for row in stored.values()} == {"tests.e2e.node.metrics"}
