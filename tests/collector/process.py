"""A real collector process (`python -m collector`) on free ports, for process-level tests."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from tests.conftest import REDIS_URL
from tests.support import OtlpEndpoints, ServiceProcess, free_port, service_env


@dataclass
class CollectorProcess(OtlpEndpoints):
    service: ServiceProcess
    http_port: int
    grpc_port: int

    @property
    def pid(self) -> int:
        assert self.service.proc is not None
        return self.service.proc.pid

    def children(self) -> list[int]:
        path = Path(f"/proc/{self.pid}/task/{self.pid}/children")
        return [int(pid) for pid in path.read_text().split()] if path.exists() else []


def collector_process(prefix: str, tmp_path: Path, redis_url: str = REDIS_URL, **extra: str) -> CollectorProcess:
    http_port, grpc_port, metrics_port = free_port(), free_port(), free_port()
    env = service_env({
        "REDIS_URL": redis_url, "REDIS_KEY_PREFIX": prefix, "COLLECTOR_HOST": "127.0.0.1", "METRICS_HOST": "127.0.0.1",
        "COLLECTOR_OTLP_HTTP_PORT": str(http_port), "COLLECTOR_OTLP_GRPC_PORT": str(grpc_port),
        "COLLECTOR_METRICS_PORT": str(metrics_port), "OBSERVATORY_ENV_FILE": "/nonexistent", **extra,
    })
    env.pop("PROMETHEUS_MULTIPROC_DIR", None)
    return CollectorProcess(ServiceProcess("collector", env, metrics_port, tmp_path / f"collector-{os.urandom(3).hex()}.log"), http_port, grpc_port)
