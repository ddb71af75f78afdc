"""Redis goes away under a running collector: 503 / UNAVAILABLE, then recovery without restart.

Uses a private redis-server (the shared one must never be stopped)."""

from __future__ import annotations

import signal
import urllib.error
import urllib.request
from pathlib import Path

import grpc
import pytest
import redis as redis_sync
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2_grpc

from common.stream import StreamKeys
from tests.collector.otlp import make_request
from tests.collector.process import CollectorProcess, collector_process
from tests.infra import PrivateRedis
from tests.support import http_get, wait_for

pytestmark = pytest.mark.e2e





def post(collector: CollectorProcess) -> tuple[int, str | None]:
    request = urllib.request.Request(collector.http_url, data=make_request().SerializeToString(), headers={"Content-Type": "application/x-protobuf"})
    try:
        with urllib.request.urlopen(request, timeout=20) as response:
            return response.status, None
    except urllib.error.HTTPError as exc:
        return exc.code, exc.headers.get("Retry-After")


def grpc_code(collector: CollectorProcess) -> grpc.StatusCode:
    with grpc.insecure_channel(collector.grpc_target) as channel:
        try:
            trace_service_pb2_grpc.TraceServiceStub(channel).Export(make_request(), timeout=20)
        except grpc.RpcError as exc:
            return exc.code()
    return grpc.StatusCode.OK


def ready_status(collector: CollectorProcess) -> int:
    return http_get(f"http://127.0.0.1:{collector.service.metrics_port}/ready")[0]


def test_redis_outage_gives_503_then_recovers_without_restart(private_redis: PrivateRedis, redis_prefix: str, tmp_path: Path) -> None:
    collector = collector_process(redis_prefix, tmp_path, redis_url=private_redis.url, REDIS_TIMEOUT="1", RETRY_AFTER="4")
    collector.service.start().wait_ready()
    try:
        assert post(collector) == (200, None)
        private_redis.kill()
        assert post(collector) == (503, "4")
        assert grpc_code(collector) == grpc.StatusCode.UNAVAILABLE
        assert ready_status(collector) == 503
        private_redis.start()
        wait_for(lambda: post(collector) == (200, None), what="the collector to publish again")
        assert grpc_code(collector) == grpc.StatusCode.OK
        assert ready_status(collector) == 200
        client = redis_sync.Redis.from_url(private_redis.url)
        assert client.xlen(StreamKeys(redis_prefix).stream(0)) >= 2  # the new Redis starts empty
        client.close()
        assert collector.service.proc is not None and collector.service.proc.poll() is None
    finally:
        collector.service.stop()


def test_a_hung_redis_gives_503_after_the_timeout(private_redis: PrivateRedis, redis_prefix: str, tmp_path: Path) -> None:
    collector = collector_process(redis_prefix, tmp_path, redis_url=private_redis.url, REDIS_TIMEOUT="0.5")
    collector.service.start().wait_ready()
    assert private_redis.proc is not None
    try:
        assert post(collector)[0] == 200
        private_redis.proc.send_signal(signal.SIGSTOP)
        try:
            assert post(collector)[0] == 503
        finally:
            private_redis.proc.send_signal(signal.SIGCONT)
        wait_for(lambda: post(collector)[0] == 200, what="the collector to publish again")
    finally:
        collector.service.stop()
