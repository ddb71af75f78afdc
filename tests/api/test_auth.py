"""Credentials: API keys and JWTs, none, wrong, expired, good, and scopes (403)."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from aiohttp.test_utils import TestClient

from api.keys import digest, entry_for, main as keys_main, parse_key_entries
from common.settings import SettingsError
from tests.api.conftest import KEY_ALL, KEY_NONE, KEY_TRACES, KEY_USAGE, ClientFactory, get_json, token
from tests.api.scenario import TRACE_A

TRACE = f"/api/v1/traces/{TRACE_A}"
SERVICES = "/api/v1/services"


def bearer(credential: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {credential}"}


@pytest.mark.parametrize(("headers", "reason"), [
    ({}, "send an API key"),
    (bearer("obs_wrong-key"), "not a valid API key"),
    ({"X-API-Key": "obs_wrong-key"}, "not a valid API key"),
    ({"Authorization": f"Basic {KEY_ALL}"}, "must be 'Bearer"),
    (bearer(token(expires_in=-60)), "expired"),
    (bearer(token(secret="another-secret-of-thirty-two-bytes!!")), "Signature verification failed"),
    (bearer(token(sub="")[:-4] + "AAAA"), "not valid"),
])
async def test_missing_wrong_and_expired_credentials_get_401(client: TestClient, headers: dict[str, str], reason: str) -> None:
    response = await client.get(TRACE, headers=headers)
    body = await response.json(content_type=None)
    assert response.status == 401 and reason in body["detail"]
    assert response.headers["WWW-Authenticate"].startswith("Bearer")
    assert response.content_type == "application/problem+json"


async def test_jwt_without_exp_or_sub_is_refused(client: TestClient) -> None:
    import jwt

    for claims in ({"sub": "x", "scope": "traces"}, {"exp": 4102444800, "scope": "traces"}):
        raw = jwt.encode(claims, "test-secret-of-at-least-thirty-two-bytes", algorithm="HS256")
        response = await client.get(TRACE, headers=bearer(raw))
        assert response.status == 401


# Credentials are made when the test runs: a JWT made at collection time (60 s) expired
# before its test ran in a long suite.
@pytest.mark.parametrize("headers", [lambda: bearer(KEY_ALL), lambda: {"X-API-Key": KEY_ALL}, lambda: bearer(token())],
                         ids=["bearer-key", "x-api-key", "jwt"])
async def test_good_credentials_are_served(client: TestClient, headers: Callable[[], dict[str, str]]) -> None:
    body = await get_json(client, TRACE, headers=headers())
    assert body["trace_id"] == TRACE_A


@pytest.mark.parametrize(("credential", "trace_status", "usage_status"), [
    (KEY_TRACES, 200, 403),
    (KEY_USAGE, 403, 200),
    (KEY_NONE, 403, 403),
    (token(scope="traces"), 200, 403),
    (token(scope="usage admin"), 403, 200),
    (token(scope=""), 403, 403),
])
async def test_scopes(client: TestClient, credential: str, trace_status: int, usage_status: int) -> None:
    trace = await client.get(TRACE, headers=bearer(credential))
    usage = await client.get(SERVICES, headers=bearer(credential))
    assert (trace.status, usage.status) == (trace_status, usage_status)
    if trace.status == 403:
        assert "'traces' scope" in (await trace.json(content_type=None))["detail"]


async def test_public_routes_need_no_credential(client: TestClient) -> None:
    for path in ("/api/v1/health", "/api/v1/ready", "/api/v1/openapi.json"):
        response = await client.get(path)
        assert response.status == 200, path
    assert (await (await client.get("/api/v1/ready")).json())["checks"] == {"postgres": "ok", "redis": "ok"}


async def test_auth_disabled_serves_without_credentials(make_client: ClientFactory) -> None:
    client = await make_client(api_auth_disabled=True, api_keys=(), jwt_secret="")
    assert (await get_json(client, TRACE, headers={}))["trace_id"] == TRACE_A
    spec = await get_json(client, "/api/v1/openapi.json", headers={})
    assert spec["paths"]["/api/v1/traces/{trace_id}"]["get"]["security"] == []


async def test_no_credentials_configured_refuses_everything(make_client: ClientFactory) -> None:
    client = await make_client(api_keys=(), jwt_secret="")
    assert (await client.get(TRACE, headers=bearer(KEY_ALL))).status == 401
    assert (await client.get(TRACE, headers=bearer(token()))).status == 401


def test_key_entries_hold_only_the_hash() -> None:
    [entry] = parse_key_entries((entry_for("ci", "traces+usage", "obs_secret"),))
    assert entry.name == "ci" and entry.scopes == {"traces", "usage"} and entry.digest == digest("obs_secret")
    assert "obs_secret" not in entry_for("ci", "*", "obs_secret")


@pytest.mark.parametrize(("entries", "message"), [
    (("ci:*",), "NAME:SCOPES:SHA256"),
    (("ci:*:abc",), "64 hex characters"),
    (("c i:*:" + "0" * 64,), "name must be"),
    (("ci:admin:" + "0" * 64,), "unknown scope 'admin'"),
    (("ci:*:" + "0" * 64, "ci:usage:" + "1" * 64), "share a name"),
])
def test_bad_key_entries_are_settings_errors(entries: tuple[str, ...], message: str) -> None:
    with pytest.raises(SettingsError, match=message):
        parse_key_entries(entries)


def test_keys_command_prints_a_working_entry(capsys: pytest.CaptureFixture[str]) -> None:
    keys_main(["new", "dashboards", "usage"])
    lines = capsys.readouterr().out.splitlines()
    key = lines[0].rsplit(" ", 1)[1]
    [entry] = parse_key_entries((lines[1].rsplit(" ", 1)[1],))
    assert key.startswith("obs_") and entry.digest == digest(key) and entry.scopes == {"usage"}
