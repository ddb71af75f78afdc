"""An API app over a database holding known data (tests/api/scenario.py), served in-process."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import replace
from typing import Any

import jwt
import pytest
from aiohttp.test_utils import TestClient, TestServer

from api.app import make_app, make_pool
from api.keys import entry_for
from api.settings import ApiSettings
from common.redis_client import AnyRedis, connect
from tests.api import scenario
from tests.conftest import REDIS_URL, Database, create_database, drop_database

KEY_ALL = "obs_test-key-with-every-scope"
KEY_TRACES = "obs_test-key-for-traces-only"
KEY_USAGE = "obs_test-key-for-usage-only"
KEY_NONE = "obs_test-key-without-scopes"
JWT_SECRET = "test-secret-of-at-least-thirty-two-bytes"
AUTH = {"Authorization": f"Bearer {KEY_ALL}"}

ClientFactory = Callable[..., Awaitable[TestClient]]


def token(sub: str = "notebook", scope: str = "traces usage", expires_in: float = 60, secret: str = JWT_SECRET, **claims: Any) -> str:
    payload = {"sub": sub, "scope": scope, "exp": int(time.time() + expires_in), **claims}
    return jwt.encode(payload, secret, algorithm="HS256")


@pytest.fixture(scope="session")
def api_database() -> Iterator[Database]:
    db = create_database("obs_api_test")
    with db.connect() as conn:
        scenario.seed(conn)
    yield db
    drop_database(db.name)


def api_settings(db: Database, prefix: str, **overrides: Any) -> ApiSettings:
    settings = ApiSettings(
        database_readonly_url=db.readonly_dsn, redis_url=REDIS_URL, redis_key_prefix=prefix,
        api_keys=(
            entry_for("all", "*", KEY_ALL), entry_for("tracer", "traces", KEY_TRACES),
            entry_for("accountant", "usage", KEY_USAGE), entry_for("nobody", "", KEY_NONE),
        ),
        jwt_secret=JWT_SECRET, db_pool_min=0, db_pool_max=4, log_format="pretty",
        max_search_window=30 * 86400, max_usage_window=30 * 86400,
    )
    return replace(settings, **overrides)


@pytest.fixture
async def make_client(api_database: Database, redis_prefix: str) -> AsyncIterator[ClientFactory]:
    opened: list[tuple[TestClient, Any, AnyRedis]] = []

    async def factory(database: Database | None = None, **overrides: Any) -> TestClient:
        settings = api_settings(database or api_database, redis_prefix, **overrides)
        pool = make_pool(settings)
        await pool.open()
        redis = connect(settings.redis_url, settings.redis_timeout)
        client = TestClient(TestServer(make_app(settings, pool, redis)))
        await client.start_server()
        opened.append((client, pool, redis))
        return client

    yield factory
    for client, pool, redis in opened:
        await client.close()
        await pool.close()
        await redis.aclose()


@pytest.fixture
async def client(make_client: ClientFactory) -> TestClient:
    return await make_client()


async def get_json(client: TestClient, path: str, expect: int = 200, headers: dict[str, str] | None = None, **params: Any) -> Any:
    response = await client.get(path, params=params or None, headers=AUTH if headers is None else headers)
    body = await response.json(content_type=None)
    assert response.status == expect, body
    return body
