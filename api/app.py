"""The API process: a read-only connection pool, the routes, ops endpoints, graceful stop."""

from __future__ import annotations

import asyncio
import signal

import psycopg
from aiohttp import web
from psycopg_pool import AsyncConnectionPool
from redis.asyncio import Redis

from api.routes import POOL, add_routes
from api.settings import ApiSettings
from common.logging import configure_logging, get_logger
from common.ops import ops_app, start_site
from common.settings import load

log = get_logger("api")


def make_pool(settings: ApiSettings) -> AsyncConnectionPool:
    async def configure(conn: psycopg.AsyncConnection) -> None:
        await conn.set_autocommit(True)
        await conn.execute(f"SET statement_timeout = {int(settings.query_timeout * 1000)}")
        await conn.execute("SET default_transaction_read_only = on")

    return AsyncConnectionPool(
        settings.database_readonly_url, min_size=settings.db_pool_min, max_size=settings.db_pool_max,
        configure=configure, open=False, timeout=settings.query_timeout,
        kwargs={"application_name": "observatory-api", "connect_timeout": 5},
    )


def make_app(pool: AsyncConnectionPool) -> web.Application:
    app = web.Application()
    app[POOL] = pool
    add_routes(app)
    return app


async def serve(settings: ApiSettings) -> None:
    pool = make_pool(settings)
    await pool.open(wait=False)
    redis = Redis.from_url(settings.redis_url, socket_timeout=settings.redis_timeout, socket_connect_timeout=settings.redis_timeout)

    async def check_db() -> str | None:
        async with pool.connection(timeout=2) as conn:
            await conn.execute("SELECT 1")
        return None

    async def check_redis() -> str | None:
        await redis.ping()
        return None

    runner = web.AppRunner(make_app(pool), access_log=None, handle_signals=False)
    await runner.setup()
    await web.TCPSite(runner, settings.api_host, settings.api_port, reuse_port=True).start()
    ops = await start_site(ops_app("api", {"postgres": check_db, "redis": check_redis}), settings.metrics_host, settings.api_metrics_port)
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
