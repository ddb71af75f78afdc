"""The API process: a read-only connection pool, the routes, ops endpoints, graceful stop."""

from __future__ import annotations

import asyncio
import secrets
import signal

import orjson
import psycopg
from aiohttp import web
from psycopg.types.json import set_json_loads
from psycopg_pool import AsyncConnectionPool

from api import middleware, tempo, ui
from api.auth import Authenticator
from api.cache import AnswerCache
from api.openapi import document
from api.ratelimit import RateLimiter
from api.routes import CACHE, CURSOR_KEY, MAX_BODY, OPENAPI, POOL, READY_CHECKS, SETTINGS, add_routes
from api.settings import ApiSettings
from common.logging import configure_logging, get_logger
from common.ops import ReadyCheck, ops_app, start_site
from common.redis_client import AnyRedis, connect
from common.settings import load

log = get_logger("api")
WORK_MEM = "32MB"


def make_pool(settings: ApiSettings) -> AsyncConnectionPool:
    async def configure(conn: psycopg.AsyncConnection) -> None:
        set_json_loads(orjson.loads, conn)  # attribute maps are decoded on every answer
        await conn.set_autocommit(True)
        await conn.execute(f"SET statement_timeout = {int(settings.query_timeout * 1000)}")
        await conn.execute("SET default_transaction_read_only = on")
        # JIT compiles for ~50-100 ms on the big aggregates here and rarely earns it back in
        # one answer; the percentile sorts fit in memory instead of spilling to disk.
        await conn.execute("SET jit = off")
        await conn.execute(f"SET work_mem = '{WORK_MEM}'")
        # No parallel workers: a lookup by trace id over compressed chunks waited 100+ ms for
        # workers to start on a busy 2-core machine to save a few ms of bloom-filter checks,
        # and the API's answers are many small queries at once, not one big one.
        await conn.execute("SET max_parallel_workers_per_gather = 0")

    return AsyncConnectionPool(
        settings.database_readonly_url, min_size=settings.db_pool_min, max_size=settings.db_pool_max,
        configure=configure, open=False, timeout=settings.query_timeout,
        kwargs={"application_name": "observatory-api", "connect_timeout": 5},
    )


def make_app(settings: ApiSettings, pool: AsyncConnectionPool, redis: AnyRedis) -> web.Application:
    app = web.Application(middlewares=middleware.MIDDLEWARES, client_max_size=MAX_BODY)
    app[SETTINGS] = settings
    app[CURSOR_KEY] = cursor_key(settings)
    app[POOL] = pool
    app[CACHE] = AnswerCache(redis, settings.redis_key_prefix, settings.cache_ttl)
    app[middleware.AUTHENTICATOR] = Authenticator(settings)
    app[middleware.RATE_LIMITER] = RateLimiter(redis, settings.redis_key_prefix, settings.rate_limit_requests, settings.rate_limit_window)
    app[middleware.CORS_ORIGINS] = settings.cors_origins
    app[OPENAPI] = orjson.dumps(document(settings))
    app[middleware.ROUTE_SCOPES] = {**add_routes(app), **tempo.add_routes(app), **ui.add_routes(app)}
    app[READY_CHECKS] = ready_checks(pool, redis)
    return app


def cursor_key(settings: ApiSettings) -> bytes:
    key = settings.cursor_key()
    if key is None:
        # Nothing shared to derive it from: cursors still cannot be forged, but one made by
        # another replica (or before a restart) is refused with a 400.
        log.warning("no CURSOR_SECRET, JWT_SECRET or API_KEYS: paging cursors are signed with a random key of this process")
        key = secrets.token_bytes(32)
    return key


def ready_checks(pool: AsyncConnectionPool, redis: AnyRedis) -> dict[str, ReadyCheck]:
    async def check_db() -> str | None:
        async with pool.connection(timeout=2) as conn:
            await conn.execute("SELECT 1")
        return None

    async def check_redis() -> str | None:
        await redis.ping()
        return None

    return {"postgres": check_db, "redis": check_redis}


def warn_about_auth(settings: ApiSettings) -> None:
    if settings.api_auth_disabled:
        log.warning("API_AUTH_DISABLED is true: every route answers without credentials")
    elif not (settings.api_keys or settings.jwt_secret):
        log.warning("no API_KEYS and no JWT_SECRET: every route but health, ready and openapi.json answers 401")


async def serve(settings: ApiSettings) -> None:
    pool = make_pool(settings)
    await pool.open(wait=False)
    redis = connect(settings.redis_url, settings.redis_timeout)
    warn_about_auth(settings)
    checks = ready_checks(pool, redis)
    runner = web.AppRunner(make_app(settings, pool, redis), access_log=None, handle_signals=False)
    await runner.setup()
    await web.TCPSite(runner, settings.api_host, settings.api_port, reuse_port=True).start()
    ops = await start_site(ops_app("api", checks), settings.metrics_host, settings.api_metrics_port)
    log.info("api listening", port=settings.api_port, metrics=settings.api_metrics_port)

    stopping = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stopping.set)
    await stopping.wait()
    await runner.cleanup()
    await ops.cleanup()
    await pool.close()
    await redis.aclose()
    log.info("api stopped")


def main() -> None:
    settings = load(ApiSettings)
    configure_logging(settings.log_level, settings.log_format, "api")
    asyncio.run(serve(settings))
