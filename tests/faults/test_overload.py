"""Overload against a writer that cannot keep up: only retryable refusals, flat memory,
and everything accepted is stored once the load stops."""

from __future__ import annotations

from pathlib import Path

import grpc
import pytest

from tests.conftest import Database
from tests.e2e.conftest import start_stack
from tests.faults.load import total_spans
from tests.faults.otlp import GrpcClient, post, request_with_spans
from tests.support import rss_bytes, wait_for

pytestmark = pytest.mark.e2e

MAX_QUEUE = 2000
PER_REQUEST = 50
RSS_GROWTH_LIMIT = 64 * 1024 * 1024  # the collector holds nothing: its memory must not follow the load


def test_twice_the_backlog_limit_gets_only_retryable_refusals(fresh_database: Database, redis_prefix: str, tmp_path: Path) -> None:
    stack = start_stack(fresh_database, redis_prefix, tmp_path, MAX_QUEUE_SIZE=str(MAX_QUEUE))
    grpc_client = GrpcClient(stack.grpc_target)
    try:
        assert stack.storage.stop() == 0  # the slowest writer: none at all while the load runs
        pid = stack.collector.proc.pid
        rss_before = rss_bytes(pid)
        accepted = refused = 0
        http_refusals: set[int] = set()
        grpc_refusals: set[grpc.StatusCode] = set()
        for n in range(2 * MAX_QUEUE // PER_REQUEST):
            body = request_with_spans(PER_REQUEST, seed=n).SerializeToString()
            if n % 2:
                status, headers, _ = post(stack.http_url, body)
                if status == 200:
                    accepted += PER_REQUEST
                else:
                    refused += PER_REQUEST
                    http_refusals.add(status)
                    assert int(headers["Retry-After"]) > 0
            else:
                code = grpc_client.export(body)
                if code == grpc.StatusCode.OK:
                    accepted += PER_REQUEST
                else:
                    refused += PER_REQUEST
                    grpc_refusals.add(code)
        assert refused > 0 and accepted >= MAX_QUEUE - PER_REQUEST
        assert http_refusals <= {429, 503}, http_refusals
        assert grpc_refusals <= {grpc.StatusCode.RESOURCE_EXHAUSTED, grpc.StatusCode.UNAVAILABLE}, grpc_refusals
        assert rss_bytes(pid) - rss_before < RSS_GROWTH_LIMIT
        assert stack.collector.metric("observatory_collector_refused_total") * PER_REQUEST >= refused * 0.99

        stack.storage.start().wait_ready()
        wait_for(lambda: total_spans(fresh_database.admin_dsn) == accepted, 60, 0.1, f"{accepted} accepted spans stored")
        # With the backlog drained the collector accepts again.
        wait_for(lambda: post(stack.http_url, request_with_spans(1).SerializeToString())[0] == 200, 10, 0.1,
                 "the collector to accept again")
    finally:
        grpc_client.close()
        stack.stop()
