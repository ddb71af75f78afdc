"""COLLECTOR_WORKERS: processes sharing the OTLP ports, metrics summed, lifecycle."""

from __future__ import annotations

import json
import os
import signal
import socket
import urllib.request
from pathlib import Path

import pytest
import redis as redis_sync

from common.stream import StreamKeys
from tests.collector.otlp import make_request
from tests.collector.process import CollectorProcess, collector_process
from tests.support import http_get, wait_for

pytestmark = pytest.mark.e2e


def post_on_new_connection(url: str, body: bytes) -> int:
    request = urllib.request.Request(url, data=body, headers={"Content-Type": "application/x-protobuf", "Connection": "close"})
    with urllib.request.urlopen(request, timeout=10) as response:
        return response.status


def send(collector: CollectorProcess, requests: int, spans: int) -> None:
    for _ in range(requests):
        assert post_on_new_connection(collector.http_url, make_request(spans=spans).SerializeToString()) == 200


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return Path(f"/proc/{pid}/stat").read_text().split()[2] != "Z"


@pytest.fixture
def workers(redis_prefix: str, tmp_path: Path):  # type: ignore[no-untyped-def]
    collector = collector_process(redis_prefix, tmp_path, COLLECTOR_WORKERS="2")
    collector.service.start().wait_ready()
    yield collector
    collector.service.stop()
    collector.service.kill()


def test_workers_share_the_ports_and_metrics_add_up(workers: CollectorProcess, redis_prefix: str, redis_client: redis_sync.Redis) -> None:
    first = workers.children()
    assert len(first) == 2
    status, body = http_get(f"http://127.0.0.1:{workers.service.metrics_port}/ready")
    assert status == 200 and json.loads(body)["checks"] == {"redis": "ok", "workers": "ok"}
    send(workers, 30, spans=5)
    assert workers.service.metric("observatory_collector_spans_accepted_total", 'protocol="http"') == 150
    # A worker that dies is replaced, and what it counted still counts.
    os.kill(first[0], signal.SIGKILL)
    wait_for(lambda: len(workers.children()) == 2 and first[0] not in workers.children(), what="the worker replaced")
    workers.service.wait_ready()
    send(workers, 30, spans=5)
    assert workers.service.metric("observatory_collector_spans_accepted_total", 'protocol="http"') == 300
    assert workers.service.metric("observatory_collector_requests_total", 'outcome="ok"') == 60
    assert redis_client.xlen(StreamKeys(redis_prefix).stream(0)) == 60


def test_sigterm_stops_every_worker(workers: CollectorProcess) -> None:
    children = workers.children()
    assert workers.service.stop() == 0
    assert not any(alive(pid) for pid in children)


def test_workers_stop_when_the_supervisor_is_killed(workers: CollectorProcess) -> None:
    children = workers.children()
    workers.service.kill()
    wait_for(lambda: not any(alive(pid) for pid in children), timeout=10, what="orphaned workers to exit")


def test_a_worker_that_cannot_start_stops_the_collector(redis_prefix: str, tmp_path: Path) -> None:
    with socket.socket() as taken:  # a plain listener without SO_REUSEPORT: workers cannot bind
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        collector = collector_process(redis_prefix, tmp_path, COLLECTOR_WORKERS="2",
                                      COLLECTOR_OTLP_HTTP_PORT=str(taken.getsockname()[1]))
        collector.service.start()
        assert collector.service.proc is not None
        assert collector.service.proc.wait(30) == 1
    assert "exited during start-up" in collector.service.log()


def test_a_lone_collector_does_not_share_its_port(redis_prefix: str, tmp_path: Path) -> None:
    first = collector_process(redis_prefix, tmp_path)
    first.service.start().wait_ready()
    try:
        second = collector_process(redis_prefix, tmp_path, COLLECTOR_OTLP_HTTP_PORT=str(first.http_port))
        second.service.start()
        assert second.service.proc is not None
        assert second.service.proc.wait(30) != 0
        assert "address already in use" in second.service.log().lower()
    finally:
        first.service.stop()
