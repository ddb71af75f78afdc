"""Real SDK exporters in every encoding the collector takes, through to the API."""

from __future__ import annotations

import pytest

from tests.e2e.conftest import Stack
from tests.e2e.sdk import send_llm_trace
from tests.e2e.test_walking_skeleton import assert_trace_matches

pytestmark = pytest.mark.e2e


@pytest.mark.parametrize(("kind", "gzip"), [("grpc", True), ("http", True), ("json", False), ("json", True)])
def test_sdk_exporters_round_trip(stack: Stack, kind: str, gzip: bool) -> None:
    endpoint = stack.grpc_target if kind == "grpc" else stack.http_url
    service = f"svc-{kind}-{'gzip' if gzip else 'plain'}"
    sent = send_llm_trace(kind, endpoint, service=service, gzip=gzip)
    assert_trace_matches(stack.trace(sent.trace_id, spans=3), sent, service)
