"""Rate limits per credential, CORS, and the Prometheus metrics of both."""

from __future__ import annotations

import prometheus_client
import pytest
from aiohttp.test_utils import TestClient

from api.settings import ApiSettings
from common.settings import SettingsError, load
from tests.api.conftest import KEY_ALL, KEY_TRACES, ClientFactory, token
from tests.api.scenario import TRACE_A
from tests.infra import PrivateRedisCluster
from tests.support import async_wait_for, free_port

TRACE = f"/api/v1/traces/{TRACE_A}"


def metric(name: str, **labels: str) -> float:
    return prometheus_client.REGISTRY.get_sample_value(name, labels) or 0.0


async def test_rate_limit_per_credential(make_client: ClientFactory) -> None:
    client = await make_client(rate_limit_requests=3, rate_limit_window=60)
    refused_before = metric("observatory_api_rate_limited_total")
    remaining = []
    for _ in range(3):
        response = await client.get(TRACE, headers={"X-API-Key": KEY_ALL})
        assert response.status == 200
        remaining.append(response.headers["RateLimit-Remaining"])
        assert response.headers["RateLimit-Limit"] == "3" and response.headers["RateLimit-Policy"] == "3;w=60"
    assert remaining == ["2", "1", "0"]
    refused = await client.get(TRACE, headers={"X-API-Key": KEY_ALL})
    problem = await refused.json(content_type=None)
    assert refused.status == 429 and problem["status"] == 429
    assert 1 <= int(refused.headers["Retry-After"]) <= 60 and refused.headers["RateLimit-Remaining"] == "0"
    assert metric("observatory_api_rate_limited_total") == refused_before + 1
    # Another credential has its own budget; public routes are not counted.
    assert (await client.get(TRACE, headers={"X-API-Key": KEY_TRACES})).status == 200
    assert (await client.get(TRACE, headers={"Authorization": f"Bearer {token()}"})).status == 200
    assert (await client.get("/api/v1/health")).status == 200
    assert "RateLimit-Limit" not in (await client.get("/api/v1/health")).headers


async def test_rate_limit_window_resets(make_client: ClientFactory) -> None:
    client = await make_client(rate_limit_requests=1, rate_limit_window=1)
    assert (await client.get(TRACE, headers={"X-API-Key": KEY_ALL})).status == 200
    refused = await client.get(TRACE, headers={"X-API-Key": KEY_ALL})
    assert refused.status == 429 and refused.headers["Retry-After"] == "1"

    async def served_again() -> bool:
        return (await client.get(TRACE, headers={"X-API-Key": KEY_ALL})).status == 200

    await async_wait_for(served_again, timeout=5, interval=0.2, what="a new rate-limit window")


async def test_rate_limit_off(make_client: ClientFactory) -> None:
    client = await make_client(rate_limit_requests=0)
    response = await client.get(TRACE, headers={"X-API-Key": KEY_ALL})
    assert response.status == 200 and "RateLimit-Limit" not in response.headers


@pytest.mark.parametrize(("origins", "origin", "allowed"), [
    (("https://dash.example",), "https://dash.example", True),
    (("https://dash.example",), "https://evil.example", False),
    (("*",), "https://any.example", True),
    ((), "https://dash.example", False),
])
async def test_cors(make_client: ClientFactory, origins: tuple[str, ...], origin: str, allowed: bool) -> None:
    client = await make_client(cors_origins=origins)
    preflight = await client.options(TRACE, headers={
        "Origin": origin, "Access-Control-Request-Method": "GET", "Access-Control-Request-Headers": "authorization",
    })
    if allowed:
        # The preflight carries no credential and must not be refused for it.
        assert preflight.status == 204
        assert preflight.headers["Access-Control-Allow-Origin"] == origin
        assert "Authorization" in preflight.headers["Access-Control-Allow-Headers"]
    else:
        assert preflight.status in (403, 405) and "Access-Control-Allow-Origin" not in preflight.headers
    response = await client.get(TRACE, headers={"Origin": origin, "X-API-Key": KEY_ALL})
    assert response.status == 200
    assert response.headers.get("Access-Control-Allow-Origin") == (origin if allowed else None)
    # Error answers carry CORS headers too, so a browser page can read why it was refused.
    refused = await client.get(TRACE, headers={"Origin": origin})
    assert refused.status == 401
    assert refused.headers.get("Access-Control-Allow-Origin") == (origin if allowed else None)
    if allowed:
        assert "RateLimit-Remaining" in response.headers["Access-Control-Expose-Headers"]


async def test_request_metrics_per_route(client: TestClient) -> None:
    labels = {"route": "/api/v1/traces/{trace_id}", "method": "GET"}
    ok_before = metric("observatory_api_requests_total", **labels, status="200")
    bad_before = metric("observatory_api_requests_total", **labels, status="400")
    seen_before = metric("observatory_api_request_duration_seconds_count", route=labels["route"])
    await client.get(TRACE, headers={"X-API-Key": KEY_ALL})
    await client.get("/api/v1/traces/nothex", headers={"X-API-Key": KEY_ALL})
    assert metric("observatory_api_requests_total", **labels, status="200") == ok_before + 1
    assert metric("observatory_api_requests_total", **labels, status="400") == bad_before + 1
    assert metric("observatory_api_request_duration_seconds_count", route=labels["route"]) == seen_before + 2
    assert metric("observatory_api_errors_total", route=labels["route"], kind="client") >= 1


@pytest.mark.parametrize(("environ", "message"), [
    ({"API_KEYS": "just-a-key"}, "API_KEYS entry 1 must be NAME:SCOPES:SHA256"),
    ({"JWT_SECRET": "short"}, "JWT_SECRET must be at least 32 bytes"),
    ({"RATE_LIMIT_REQUESTS": "-1"}, "RATE_LIMIT_REQUESTS must be"),
    ({"API_ROLLUP_TIERS": "1h"}, "API_ROLLUP_TIERS must list 1m"),
    ({"API_ROLLUP_TIERS": "1m,1d"}, "API_ROLLUP_TIERS must list 1m"),
])
def test_bad_security_settings_are_refused_at_start(environ: dict[str, str], message: str) -> None:
    with pytest.raises(SettingsError, match=message):
        load(ApiSettings, environ)


async def test_without_redis_answers_are_served_uncached_and_unlimited(make_client: ClientFactory) -> None:
    client = await make_client(redis_url=f"redis://127.0.0.1:{free_port()}/0", rate_limit_requests=1, redis_timeout=1.0)
    errors = metric("observatory_api_redis_errors_total", use="ratelimit")
    for _ in range(3):  # over the limit of 1, but the limit cannot be counted
        response = await client.get(TRACE, headers={"X-API-Key": KEY_ALL})
        assert response.status == 200 and "RateLimit-Limit" not in response.headers
    assert metric("observatory_api_redis_errors_total", use="ratelimit") == errors + 3
    services = await client.get("/api/v1/services", headers={"X-API-Key": KEY_ALL})
    assert services.status == 200 and services.headers["Cache-Status"] == "observatory-api; fwd=miss"
    assert metric("observatory_api_cache_requests_total", result="error") >= 1
    ready = await client.get("/api/v1/ready")
    assert ready.status == 503 and (await ready.json())["checks"]["redis"] != "ok"


async def test_on_a_redis_cluster_limits_and_cache_work(make_client: ClientFactory, redis_cluster: PrivateRedisCluster) -> None:
    client = await make_client(redis_url=redis_cluster.url, rate_limit_requests=2, rate_limit_window=60)
    statuses = [(await client.get(TRACE, headers={"X-API-Key": KEY_ALL})).status for _ in range(3)]
    assert statuses == [200, 200, 429]
    answers = [await client.get("/api/v1/services", headers={"Authorization": f"Bearer {token()}"}) for _ in range(2)]
    assert [a.headers["Cache-Status"] for a in answers] == ["observatory-api; fwd=miss", "observatory-api; hit"]
    assert (await client.get("/api/v1/ready")).status == 200
