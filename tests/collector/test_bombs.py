"""Decompression bombs against a real collector process: refused, and its peak memory
stays far below the bomb's inflated size."""

from __future__ import annotations

import urllib.error
import urllib.request
import zlib
from pathlib import Path

import grpc
import pytest

from tests.collector.process import collector_process
from tests.support import peak_rss_bytes

pytestmark = pytest.mark.e2e
MiB = 1024 * 1024
BOMB_MIB = 128
LIMIT = 4 * MiB


def zeros_message() -> bytes:
    """A valid ExportTraceServiceRequest-shaped message: field 1, BOMB_MIB of zeros."""
    payload = bytes(BOMB_MIB * MiB)
    length = len(payload)
    varint = bytearray()
    while True:
        byte, length = length & 0x7F, length >> 7
        varint.append(byte | (0x80 if length else 0))
        if not length:
            break
    return b"\x0a" + bytes(varint) + payload


@pytest.fixture
def collector(redis_prefix: str, tmp_path: Path):  # type: ignore[no-untyped-def]
    process = collector_process(redis_prefix, tmp_path, COLLECTOR_HTTP_MAX_BODY_BYTES=str(LIMIT), COLLECTOR_GRPC_MAX_RECV_BYTES=str(LIMIT))
    process.service.start().wait_ready()
    yield process
    process.service.stop()


def test_grpc_gzip_bomb(collector) -> None:  # type: ignore[no-untyped-def]
    before = peak_rss_bytes(collector.pid)
    with grpc.insecure_channel(collector.grpc_target) as channel:
        export = channel.unary_unary("/opentelemetry.proto.collector.trace.v1.TraceService/Export")
        with pytest.raises(grpc.RpcError) as caught:
            export(zeros_message(), compression=grpc.Compression.Gzip, timeout=60)
    assert caught.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    growth = peak_rss_bytes(collector.pid) - before
    assert growth < 32 * MiB, f"peak RSS grew by {growth / MiB:.0f} MiB for a {BOMB_MIB} MiB bomb"


def test_http_gzip_bomb(collector) -> None:  # type: ignore[no-untyped-def]
    packer = zlib.compressobj(9, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
    bomb = packer.compress(zeros_message()) + packer.flush()
    assert len(bomb) < LIMIT
    before = peak_rss_bytes(collector.pid)
    request = urllib.request.Request(collector.http_url, data=bomb, headers={"Content-Type": "application/x-protobuf", "Content-Encoding": "gzip"})
    with pytest.raises(urllib.error.HTTPError) as caught:
        urllib.request.urlopen(request, timeout=60)
    assert caught.value.code == 413
    growth = peak_rss_bytes(collector.pid) - before
    assert growth < 32 * MiB, f"peak RSS grew by {growth / MiB:.0f} MiB for a {BOMB_MIB} MiB bomb"
