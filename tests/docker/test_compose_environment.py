"""The environment each compose service gets is enough for the real process to work.

No Docker engine here, so the containers' view is rebuilt: the stack's `environment` for
migrate, collector, storage and api, with each `/run/secrets/NAME` replaced by a file
holding this test's DSNs (the test database and Redis), and free ports. The processes must
start from nothing but that (no .env), `migrate` must succeed, the three services must
become ready, docker/healthcheck.py (the images' HEALTHCHECK) must agree, a span exported
to the collector must land in this test's database (so the writer used the DSN from its
secret, not a default that happens to work on this machine), and the API must serve it to
the development key of docker/secrets.dev/api_keys, and to no one without a key.
"""

from __future__ import annotations

import json
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from tests.conftest import REDIS_URL, Database
from tests.docker.compose import ROOT, stack
from tests.support import ServiceProcess, free_port, http_get, service_env, wait_for

pytestmark = pytest.mark.e2e

PORT_VARIABLES = {
    "collector": ("COLLECTOR_METRICS_PORT", "COLLECTOR_OTLP_GRPC_PORT", "COLLECTOR_OTLP_HTTP_PORT"),
    "storage": ("STORAGE_METRICS_PORT",),
    "api": ("API_METRICS_PORT", "API_PORT"),
}


def secret_files(database: Database, tmp_path: Path) -> dict[str, Path]:
    values = {
        "database_url": database.admin_dsn,
        "database_app_url": database.app_dsn,
        "database_readonly_url": database.readonly_dsn,
        "redis_url": REDIS_URL,
    }
    # The API's credential is the real development secret: the test proves it works.
    values["api_keys"] = (ROOT / "docker/secrets.dev/api_keys").read_text()
    files = {}
    for name, value in values.items():
        files[name] = tmp_path / name
        files[name].write_text(value)
    return files


def container_env(service: str, secrets: dict[str, Path], prefix: str) -> dict[str, str]:
    env = dict(stack("base")["services"][service]["environment"])
    for variable, value in env.items():
        if value.startswith("/run/secrets/"):
            env[variable] = str(secrets[value.removeprefix("/run/secrets/")])
    # What the test adds: its own key prefix, loopback, free ports. Nothing else.
    env.update({"REDIS_KEY_PREFIX": prefix, "OBSERVATORY_ENV_FILE": "/nonexistent"})
    env.update({"METRICS_HOST": "127.0.0.1", "COLLECTOR_HOST": "127.0.0.1", "API_HOST": "127.0.0.1"})
    env.update({variable: str(free_port()) for variable in PORT_VARIABLES.get(service, ())})
    return service_env(env)


def test_services_start_and_turn_healthy_from_the_compose_environment(
    fresh_database: Database, redis_prefix: str, tmp_path: Path,
) -> None:
    secrets = secret_files(fresh_database, tmp_path)
    migrate = stack("base")["services"]["migrate"]
    result = subprocess.run(
        [sys.executable, "-m", "cli", *migrate["command"]], env=container_env("migrate", secrets, redis_prefix),
        cwd=ROOT, capture_output=True, text=True, timeout=120,
    )
    assert result.returncode == 0, result.stderr
    services = []
    try:
        for name in ("collector", "storage", "api"):
            env = container_env(name, secrets, redis_prefix)
            port = int(env[PORT_VARIABLES[name][0]])
            services.append(ServiceProcess(name, env, port, tmp_path / f"{name}.log").start())
        for service in services:
            service.wait_ready(timeout=60)
            healthcheck = stack("base")["services"][service.name]["healthcheck"]["test"]
            assert healthcheck[0] == "CMD"
            probe = subprocess.run(
                [sys.executable, str(ROOT / "docker/healthcheck.py"), *healthcheck[3:]],
                env=service.env, capture_output=True, text=True, timeout=30,
            )
            assert probe.returncode == 0, f"{service.name}: {probe.stderr}"
        export_one_span(int(services[0].env["COLLECTOR_OTLP_HTTP_PORT"]))
        with fresh_database.connect() as conn:
            wait_for(lambda: conn.execute("SELECT count(*) FROM spans WHERE name = 'compose-env'").fetchone()[0] == 1,
                     30, 0.1, "the span in the test database")
        assert_api_serves_it_to_the_dev_key(int(services[2].env["API_PORT"]))
    finally:
        for service in services:
            assert service.stop() == 0, f"{service.name} did not stop cleanly:\n{service.log()}"


DEV_KEY = "obs_dev_key_not_secret"  # docker/secrets.dev/README.md
TRACE_ID = bytes(range(1, 17))


def assert_api_serves_it_to_the_dev_key(port: int) -> None:
    url = f"http://127.0.0.1:{port}/api/v1/traces/{TRACE_ID.hex()}"
    assert http_get(url)[0] == 401
    status, body = http_get(url, {"X-API-Key": DEV_KEY})
    assert status == 200, body
    assert "compose-env" in json.dumps(json.loads(body))


def export_one_span(port: int) -> None:
    request = ExportTraceServiceRequest()
    span = request.resource_spans.add().scope_spans.add().spans.add()
    span.trace_id, span.span_id, span.name = TRACE_ID, bytes(range(1, 9)), "compose-env"
    span.start_time_unix_nano = span.end_time_unix_nano = 1_700_000_000_000_000_000
    post = urllib.request.Request(
        f"http://127.0.0.1:{port}/v1/traces", data=request.SerializeToString(),
        headers={"Content-Type": "application/x-protobuf"}, method="POST",
    )
    with urllib.request.urlopen(post, timeout=10) as response:
        assert response.status == 200
