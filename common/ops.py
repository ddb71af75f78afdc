"""The operations endpoint every service serves on its metrics port.

/metrics (Prometheus text), /health (the process answers), /ready (its dependencies
answer: 200, or 503 naming each failed check). Checks are coroutines returning None when
healthy or a short reason when not; each runs under a timeout.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Mapping

import prometheus_client
from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST

ReadyCheck = Callable[[], Awaitable[str | None]]

CHECK_TIMEOUT = 2.0


async def run_checks(checks: Mapping[str, ReadyCheck]) -> dict[str, str]:
    async def one(check: ReadyCheck) -> str:
        try:
            reason = await asyncio.wait_for(check(), CHECK_TIMEOUT)
        except asyncio.TimeoutError:
            return f"timed out after {CHECK_TIMEOUT:g}s"
        except Exception as exc:  # a failing check is an answer, not a crash
            return f"{type(exc).__name__}: {exc}"
        return reason or "ok"

    names = list(checks)
    results = await asyncio.gather(*(one(checks[n]) for n in names))
    return dict(zip(names, results))


def ops_app(
    service: str,
    checks: Mapping[str, ReadyCheck],
    registry: prometheus_client.CollectorRegistry | None = None,
    metrics_body: Callable[[], bytes] | None = None,
) -> web.Application:
    registry = registry or prometheus_client.REGISTRY

    async def metrics(_request: web.Request) -> web.Response:
        body = metrics_body() if metrics_body else prometheus_client.generate_latest(registry)
        response = web.Response(body=body)
        response.headers["Content-Type"] = CONTENT_TYPE_LATEST
        return response

    async def health(_request: web.Request) -> web.Response:
        return web.json_response({"status": "ok", "service": service})

    async def ready(_request: web.Request) -> web.Response:
        results = await run_checks(checks)
        ok = all(v == "ok" for v in results.values())
        return web.json_response(
            {"status": "ready" if ok else "not ready", "service": service, "checks": results},
            status=200 if ok else 503,
        )

    app = web.Application()
    app.router.add_get("/metrics", metrics)
    app.router.add_get("/health", health)
    app.router.add_get("/ready", ready)
    return app


async def start_site(app: web.Application, host: str, port: int) -> web.AppRunner:
    runner = web.AppRunner(app, access_log=None, handle_signals=False)
    await runner.setup()
    site = web.TCPSite(runner, host, port, reuse_port=True)
    await site.start()
    return runner
