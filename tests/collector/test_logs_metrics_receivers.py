"""OTLP logs and metrics: both protocols, both encodings, gzip, and every kind of bad input,
answered as traces are, against the real Redis.

  log record / data point with bad ids or no metric name   200 + partial_success (rejected_log_records / rejected_data_points)
  undecodable body                                          400 / INVALID_ARGUMENT naming the request type
  the signal's backlog over MAX_QUEUE_SIZE                  429 + Retry-After / RESOURCE_EXHAUSTED + RetryInfo; other signals unaffected
  Redis unreachable                                         503 / UNAVAILABLE
"""

from __future__ import annotations

import gzip
import json
import subprocess
import sys

import grpc
import pytest
from google.rpc import code_pb2
from opentelemetry.proto.collector.logs.v1 import logs_service_pb2, logs_service_pb2_grpc
from opentelemetry.proto.collector.metrics.v1 import metrics_service_pb2, metrics_service_pb2_grpc

from common.signals import LOGS, METRICS, TRACES, Signal
from tests.collector.conftest import Receivers, StartReceivers
from tests.collector.otlp import make_logs_request, make_metrics_request, make_request, to_json
from tests.collector.test_grpc_receiver import retry_delay
from tests.collector.test_http_receiver import JSON, PROTOBUF, post, status_of
from tests.support import ROOT, free_port

REQUESTS = {LOGS.name: make_logs_request, METRICS.name: make_metrics_request}


def url(receivers: Receivers, signal: Signal) -> str:
    return receivers.http_url.replace("/v1/traces", signal.http_path)


@pytest.mark.parametrize("signal", [LOGS, METRICS], ids=lambda s: s.name)
@pytest.mark.parametrize(("encoding", "compressed"), [(PROTOBUF, False), (JSON, False), (PROTOBUF, True), (JSON, True)])
async def test_http_export_is_published_on_the_signals_stream(receivers: Receivers, signal: Signal, encoding: str, compressed: bool) -> None:
    request = REQUESTS[signal.name]()
    body = request.SerializeToString() if encoding == PROTOBUF else json.dumps(to_json(request)).encode()
    headers = {"Content-Encoding": "gzip"} if compressed else {}
    if compressed:
        body = gzip.compress(body)
    status, answer_headers, answer = await post(url(receivers, signal), body, encoding, **headers)
    assert status == 200, answer
    assert answer_headers["Content-Type"] == encoding
    if encoding == PROTOBUF:
        assert signal.response_type.FromString(answer) == signal.response_type()
    else:
        assert json.loads(answer) == {}
    published = receivers.published(signal)
    assert len(published) == 1
    # The collector adds nothing to clean data: what was sent is what is on the stream.
    assert published[0] == request
    assert receivers.backlog(signal) == signal.count(request) and receivers.backlog(TRACES) == 0
    assert receivers.published(TRACES) == []


async def test_grpc_exports_of_logs_and_metrics_are_published(receivers: Receivers) -> None:
    logs, points = make_logs_request(records=4), make_metrics_request(points=3)
    async with grpc.aio.insecure_channel(receivers.grpc_target, compression=grpc.Compression.Gzip) as channel:
        assert await logs_service_pb2_grpc.LogsServiceStub(channel).Export(logs) == logs_service_pb2.ExportLogsServiceResponse()
        assert await metrics_service_pb2_grpc.MetricsServiceStub(channel).Export(points) == metrics_service_pb2.ExportMetricsServiceResponse()
    assert receivers.published(LOGS) == [logs]
    assert receivers.published(METRICS) == [points]
    assert receivers.backlog(LOGS) == 4 and receivers.backlog(METRICS) == 9


async def test_bad_log_records_and_points_get_partial_success_and_the_rest_is_kept(receivers: Receivers) -> None:
    logs = make_logs_request(records=3)
    records = logs.resource_logs[0].scope_logs[0].log_records
    records[0].trace_id = b"short"
    records[1].span_id = bytes(8)  # all-zero: "no span", kept without it
    records[2].time_unix_nano = 0  # no time: takes its observed time
    status, _, answer = await post(url(receivers, LOGS), logs.SerializeToString())
    assert status == 200
    response = logs_service_pb2.ExportLogsServiceResponse.FromString(answer)
    assert response.partial_success.rejected_log_records == 1
    assert "trace_id or span_id of the wrong length" in response.partial_success.error_message
    (kept,) = receivers.published(LOGS)
    stored = kept.resource_logs[0].scope_logs[0].log_records
    assert len(stored) == 2 and stored[0].span_id == b"" and stored[1].time_unix_nano == records[2].observed_time_unix_nano

    metrics = make_metrics_request(points=2)
    metrics.resource_metrics[0].scope_metrics[0].metrics[0].name = ""  # a gauge without a name: its 2 points go
    async with grpc.aio.insecure_channel(receivers.grpc_target) as channel:
        response = await metrics_service_pb2_grpc.MetricsServiceStub(channel).Export(metrics)
    assert response.partial_success.rejected_data_points == 2
    assert "without a name" in response.partial_success.error_message
    (kept_metrics,) = receivers.published(METRICS)
    assert METRICS.count(kept_metrics) == 4


@pytest.mark.parametrize("signal", [LOGS, METRICS], ids=lambda s: s.name)
@pytest.mark.parametrize("encoding", [PROTOBUF, JSON])
async def test_undecodable_bodies_get_400_naming_the_request_type(receivers: Receivers, signal: Signal, encoding: str) -> None:
    body = b"\xff\xff\xff" if encoding == PROTOBUF else b'{"resourceLogs": 7, "resourceMetrics": 7}'
    status, _, answer = await post(url(receivers, signal), body, encoding)
    assert status == 400
    status_message = status_of(answer, encoding)
    assert status_message.code == code_pb2.INVALID_ARGUMENT
    assert signal.request_type.DESCRIPTOR.name in status_message.message
    assert receivers.published(signal) == []


async def test_json_ids_in_base64_get_400(receivers: Receivers) -> None:
    document = to_json(make_logs_request(records=1))
    document["resourceLogs"][0]["scopeLogs"][0]["logRecords"][0]["traceId"] = "AAECAwQFBgcICQoLDA0ODw=="
    status, _, answer = await post(url(receivers, LOGS), json.dumps(document).encode(), JSON)
    assert status == 400
    assert "resourceLogs[0].scopeLogs[0].logRecords[0].traceId" in status_of(answer, JSON).message


@pytest.mark.parametrize("signal", [LOGS, METRICS], ids=lambda s: s.name)
async def test_grpc_garbage_gets_invalid_argument(receivers: Receivers, signal: Signal) -> None:
    async with grpc.aio.insecure_channel(receivers.grpc_target) as channel:
        call = channel.unary_unary(f"/{signal.grpc_service}/Export")
        with pytest.raises(grpc.aio.AioRpcError) as error:
            await call(b"\xff\xff\xff")
    assert error.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert signal.request_type.DESCRIPTOR.name in (error.value.details() or "")


async def test_a_full_log_backlog_refuses_logs_only(start_receivers: StartReceivers) -> None:
    async with start_receivers(MAX_QUEUE_SIZE="3", RETRY_AFTER="7") as receivers:
        logs = make_logs_request(records=3)
        assert (await post(url(receivers, LOGS), logs.SerializeToString()))[0] == 200
        status, headers, answer = await post(url(receivers, LOGS), logs.SerializeToString())
        assert status == 429 and headers["Retry-After"] == "7"
        assert "backlog of 3 log records not yet stored" in status_of(answer, PROTOBUF).message
        async with grpc.aio.insecure_channel(receivers.grpc_target) as channel:
            with pytest.raises(grpc.aio.AioRpcError) as error:
                await logs_service_pb2_grpc.LogsServiceStub(channel).Export(logs)
        assert error.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED and retry_delay(error.value) == 7
        # Traces and metrics have backlogs of their own.
        assert (await post(receivers.http_url, make_request(spans=2).SerializeToString()))[0] == 200
        assert (await post(url(receivers, METRICS), make_metrics_request(points=1).SerializeToString()))[0] == 200
        assert len(receivers.published(LOGS)) == 1


async def test_redis_down_gets_unavailable_for_both_signals(start_receivers: StartReceivers) -> None:
    async with start_receivers(REDIS_URL=f"redis://127.0.0.1:{free_port()}/0", REDIS_TIMEOUT="0.5") as receivers:
        for signal in (LOGS, METRICS):
            status, headers, answer = await post(url(receivers, signal), REQUESTS[signal.name]().SerializeToString())
            assert status == 503 and "Retry-After" in headers
            assert f"{signal.item} stream unavailable" in status_of(answer, PROTOBUF).message


async def test_pii_in_log_bodies_attributes_and_resource_is_redacted(receivers: Receivers) -> None:
    logs = make_logs_request(records=2)
    resource_logs = logs.resource_logs[0]
    resource_logs.resource.attributes.add(key="host.owner").value.string_value = "ops alice@example.com"
    plain, structured = resource_logs.scope_logs[0].log_records
    plain.body.string_value = "payment by 4111 1111 1111 1111 failed"
    message = structured.body.kvlist_value.values.add(key="message").value.kvlist_value
    message.values.add(key="role").value.string_value = "user"
    parts = message.values.add(key="parts").value.array_value
    parts.values.add().kvlist_value.values.add(key="content").value.string_value = "call me at bob@example.org"
    structured.attributes.add(key="user.ssn").value.string_value = "078-05-1120"
    status, _, _ = await post(url(receivers, LOGS), logs.SerializeToString())
    assert status == 200
    (stored,) = receivers.published(LOGS)
    text = stored.SerializeToString()
    for planted in (b"alice@example.com", b"4111 1111 1111 1111", b"bob@example.org", b"078-05-1120"):
        assert planted not in text
    stored_plain, stored_structured = stored.resource_logs[0].scope_logs[0].log_records
    assert stored_plain.body.string_value == "payment by [REDACTED:CARD] failed"
    content = stored_structured.body.kvlist_value.values[1].value.kvlist_value.values[1].value.array_value.values[0]
    assert content.kvlist_value.values[0].value.string_value == "call me at [REDACTED:EMAIL]"
    summary = {kv.key: kv.value for kv in stored_plain.attributes}
    assert summary["redaction.masked.count"].int_value == 1 and summary["redaction.masked.keys"].string_value == "body"


async def test_pii_in_metric_attributes_and_exemplars_is_redacted(receivers: Receivers) -> None:
    metrics = make_metrics_request(points=1)
    point = metrics.resource_metrics[0].scope_metrics[0].metrics[2].histogram.data_points[0]
    point.attributes.add(key="customer").value.string_value = "carol@example.net"
    point.exemplars[0].filtered_attributes.add(key="client.address").value.string_value = "203.0.113.9"
    assert (await post(url(receivers, METRICS), metrics.SerializeToString()))[0] == 200
    text = receivers.published(METRICS)[0].SerializeToString()
    assert b"carol@example.net" not in text and b"203.0.113.9" not in text and b"[REDACTED:EMAIL]" in text


@pytest.mark.parametrize(
    ("variable", "value", "message"),
    [
        ("PRICING_FILE", "/nonexistent/prices.json", "PRICING_FILE='/nonexistent/prices.json' cannot be read: No such file or directory"),
        ("REDACTION_RULE_STRATEGIES", "emial:mask", "REDACTION_RULE_STRATEGIES names unknown rule(s) emial"),
    ],
)
def test_a_bad_stage_setting_is_one_line_and_exit_2(variable: str, value: str, message: str) -> None:
    env = {"PATH": "/usr/bin:/bin", "OBSERVATORY_ENV_FILE": "/nonexistent", variable: value,
           "COLLECTOR_OTLP_GRPC_PORT": str(free_port()), "COLLECTOR_OTLP_HTTP_PORT": str(free_port()),
           "COLLECTOR_METRICS_PORT": str(free_port())}
    done = subprocess.run([sys.executable, "-m", "collector"], env=env, cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == [f"configuration error: {message}"]
