"""/openapi.json describes what the API does; schemathesis fuzzes the real process with it."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from aiohttp.test_utils import TestClient

from api.keys import entry_for, new_key
from api.routes import PREFIX, ROUTES
from tests.api.conftest import get_json
from tests.conftest import REDIS_URL, Database
from tests.support import ServiceProcess, free_port, service_env

# Server errors are what the issue asks to rule out; the answers must also match their
# schemas, status codes and content types as the description gives them.
CHECKS = "not_a_server_error,response_schema_conformance,status_code_conformance,content_type_conformance"


async def test_openapi_lists_every_route_with_its_parameters(client: TestClient) -> None:
    spec = await get_json(client, "/api/v1/openapi.json", headers={})
    assert spec["openapi"] == "3.1.0"
    assert {(m.upper(), p) for p, ops in spec["paths"].items() for m in ops} == {(r.method, PREFIX + r.path) for r in ROUTES}
    spans = spec["paths"]["/api/v1/spans"]["get"]
    assert {p["name"] for p in spans["parameters"]} == {p.name for p in next(r for r in ROUTES if r.path == "/spans").params}
    assert spans["security"] == [{"bearer": []}, {"apiKey": []}] and spans["x-scope"] == "traces"
    assert spec["paths"]["/api/v1/health"]["get"]["security"] == []
    kind = next(p for p in spans["parameters"] if p["name"] == "kind")
    assert kind["schema"]["enum"] == ["unspecified", "internal", "server", "client", "producer", "consumer"]


@pytest.fixture
def api_process(api_database: Database, redis_prefix: str, tmp_path: Path) -> Iterator[tuple[int, str]]:
    key = new_key()
    port, metrics_port = free_port(), free_port()
    env = service_env({
        "DATABASE_READONLY_URL": api_database.readonly_dsn, "REDIS_URL": REDIS_URL, "REDIS_KEY_PREFIX": redis_prefix,
        "API_HOST": "127.0.0.1", "METRICS_HOST": "127.0.0.1", "API_PORT": str(port), "API_METRICS_PORT": str(metrics_port),
        "API_KEYS": entry_for("fuzz", "*", key), "RATE_LIMIT_REQUESTS": "0", "OBSERVATORY_ENV_FILE": "/nonexistent",
        "API_MAX_SEARCH_WINDOW": str(30 * 86400),
    })
    service = ServiceProcess("api", env, metrics_port, tmp_path / "api.log").start()
    try:
        service.wait_ready()
        yield port, key
    finally:
        service.stop()
    # "request failed" is what the API logs with a 500. (aiohttp itself logs malformed HTTP,
    # such as a NUL in a header, with a traceback at error level after answering 400.)
    assert '"request failed"' not in service.log(), service.log()


def test_schemathesis_finds_no_server_error(api_process: tuple[int, str], tmp_path: Path) -> None:
    port, key = api_process
    schemathesis = Path(sys.executable).parent / "schemathesis"
    if not schemathesis.exists():
        pytest.skip("schemathesis is not installed (pip install -e '.[dev]')")
    result = subprocess.run(
        [str(schemathesis), "run", f"http://127.0.0.1:{port}/api/v1/openapi.json", "--checks", CHECKS,
         "--header", f"Authorization: Bearer {key}", "--max-examples", "25", "--seed", "1",
         "--request-timeout", "10", "--report-dir", str(tmp_path), "--no-color"],
        cwd=tmp_path, capture_output=True, text=True, timeout=600,  # its example database goes there
    )
    assert result.returncode == 0, result.stdout[-6000:] + result.stderr[-2000:]
