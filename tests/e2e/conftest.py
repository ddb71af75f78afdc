"""A whole stack of real service processes on free ports, against a fresh database."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest

from api.keys import entry_for, new_key
from tests.conftest import REDIS_URL, Database, create_database, delete_redis_prefix, drop_database, new_redis_prefix
from tests.support import OtlpEndpoints, ServiceProcess, free_port, http_get, service_env, wait_for


@dataclass
class Stack(OtlpEndpoints):
    database: Database
    prefix: str
    env: dict[str, str]
    collector: ServiceProcess
    storage: ServiceProcess
    api: ServiceProcess
    grpc_port: int
    http_port: int
    api_port: int
    api_key: str

    def api_get(self, path: str) -> tuple[int, object]:
        status, body = http_get(f"http://127.0.0.1:{self.api_port}{path}", headers=self.api_headers)
        return status, json.loads(body) if body else None

    @property
    def api_headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.api_key}"}

    def trace(self, trace_id: str, spans: int, timeout: float = 20.0) -> dict:
        """Poll the API until the trace has `spans` spans; return its JSON."""

        def arrived() -> dict | None:
            status, body = self.api_get(f"/api/v1/traces/{trace_id}")
            if status == 200 and isinstance(body, dict) and len(body["spans"]) >= spans:
                return body
            return None

        return wait_for(arrived, timeout, 0.1, f"trace {trace_id} with {spans} spans in the API")

    def stop(self) -> None:
        for service in (self.collector, self.storage, self.api):
            try:
                service.stop(timeout=30)
            except Exception:
                service.kill()


def start_stack(database: Database, prefix: str, tmp_path: Path, **extra: str) -> Stack:
    api_key = new_key()  # the API requires a credential; API_KEYS holds only its hash
    extra = {"API_KEYS": entry_for("e2e", "*", api_key), **extra}
    grpc_port, http_port, api_port = free_port(), free_port(), free_port()
    ports = {name: free_port() for name in ("collector", "storage", "api")}
    env = service_env(
        {
            "DATABASE_URL": database.admin_dsn,
            "DATABASE_APP_URL": database.app_dsn,
            "DATABASE_READONLY_URL": database.readonly_dsn,
            "REDIS_URL": REDIS_URL,
            "REDIS_KEY_PREFIX": prefix,
            "COLLECTOR_HOST": "127.0.0.1",
            "API_HOST": "127.0.0.1",
            "METRICS_HOST": "127.0.0.1",
            "COLLECTOR_OTLP_GRPC_PORT": str(grpc_port),
            "COLLECTOR_OTLP_HTTP_PORT": str(http_port),
            "COLLECTOR_METRICS_PORT": str(ports["collector"]),
            "STORAGE_METRICS_PORT": str(ports["storage"]),
            "API_PORT": str(api_port),
            "API_METRICS_PORT": str(ports["api"]),
            "FLUSH_INTERVAL": "0.2",
            "LOG_LEVEL": "info",
            "OBSERVATORY_ENV_FILE": "/nonexistent",
        },
        **extra,
    )
    services = {
        name: ServiceProcess(name, env, ports[name], tmp_path / f"{name}.log")
        for name in ("collector", "storage", "api")
    }
    stack = Stack(database, prefix, env, services["collector"], services["storage"], services["api"],
                  grpc_port, http_port, api_port, api_key)
    try:
        for service in services.values():
            service.start()
        for service in services.values():
            service.wait_ready()
    except Exception:
        stack.stop()
        raise
    return stack


@contextmanager
def own_stack(tmp_path: Path) -> Iterator[Stack]:
    """A stack on its own database and Redis prefix, removed after: for module-scoped stacks."""
    database = create_database()
    prefix = new_redis_prefix()
    try:
        running = start_stack(database, prefix, tmp_path)
        try:
            yield running
        finally:
            running.stop()
    finally:
        drop_database(database.name)
        delete_redis_prefix(prefix)


@pytest.fixture
def stack(fresh_database: Database, redis_prefix: str, tmp_path: Path) -> Iterator[Stack]:
    running = start_stack(fresh_database, redis_prefix, tmp_path)
    yield running
    running.stop()
