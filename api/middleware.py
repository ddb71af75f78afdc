"""What every request passes through, outermost first: metrics, CORS, problem answers,
then authentication, authorisation and the rate limit."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable

import psycopg
from aiohttp import web
from psycopg_pool import PoolTimeout

from api.auth import Authenticator, require
from api.metrics import ERRORS, LATENCY, REQUESTS
from api.problems import Problem
from api.ratelimit import RateLimiter
from common.logging import get_logger

log = get_logger("api")
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

# route template -> scope it needs (None: public)
ROUTE_SCOPES = web.AppKey("route_scopes", dict)
AUTHENTICATOR = web.AppKey("authenticator", Authenticator)
RATE_LIMITER = web.AppKey("rate_limiter", RateLimiter)
CORS_ORIGINS = web.AppKey("cors_origins", tuple)

CORS_ALLOW_HEADERS = "Authorization, Content-Type, X-API-Key"
CORS_EXPOSE_HEADERS = "RateLimit-Limit, RateLimit-Remaining, RateLimit-Reset, RateLimit-Policy, Retry-After, Cache-Status"
CORS_MAX_AGE = "600"


def route_of(request: web.Request) -> str:
    resource = request.match_info.route.resource
    return resource.canonical if resource is not None else "unmatched"


@web.middleware
async def metrics(request: web.Request, handler: Handler) -> web.StreamResponse:
    route = route_of(request)
    started = time.perf_counter()
    response = await handler(request)
    LATENCY.labels(route).observe(time.perf_counter() - started)
    REQUESTS.labels(route, request.method, str(response.status)).inc()
    if response.status >= 400:
        ERRORS.labels(route, "server" if response.status >= 500 else "client").inc()
    return response


def _origin_allowed(origin: str, allowed: tuple[str, ...]) -> bool:
    return "*" in allowed or origin in allowed


@web.middleware
async def cors(request: web.Request, handler: Handler) -> web.StreamResponse:
    allowed = request.app[CORS_ORIGINS]
    origin = request.headers.get("Origin")
    if not allowed or origin is None:
        return await handler(request)
    preflight = request.method == "OPTIONS" and "Access-Control-Request-Method" in request.headers
    if preflight:
        if not _origin_allowed(origin, allowed):
            return Problem(403, "Forbidden", f"origin {origin[:100]!r} is not in CORS_ORIGINS").response(request.path)
        response: web.StreamResponse = web.Response(status=204, headers={
            "Access-Control-Allow-Methods": "GET, POST, OPTIONS",
            "Access-Control-Allow-Headers": CORS_ALLOW_HEADERS,
            "Access-Control-Max-Age": CORS_MAX_AGE,
        })
    else:
        response = await handler(request)
    if _origin_allowed(origin, allowed):
        response.headers["Access-Control-Allow-Origin"] = origin
        response.headers["Access-Control-Expose-Headers"] = CORS_EXPOSE_HEADERS
    response.headers.add("Vary", "Origin")
    return response


@web.middleware
async def problems(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        return await handler(request)
    except Problem as problem:
        return problem.response(request.path)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        headers = {"Allow": exc.headers["Allow"]} if "Allow" in exc.headers else None
        return Problem(exc.status, exc.reason, _http_detail(exc), headers=headers).response(request.path)
    except psycopg.errors.QueryCanceled:
        ERRORS.labels(route_of(request), "timeout").inc()
        return Problem(503, "Query timed out", "the query ran past QUERY_TIMEOUT; narrow the window or add filters",
                       headers={"Retry-After": "1"}).response(request.path)
    except (PoolTimeout, psycopg.OperationalError) as exc:
        log.warning("database unavailable", error=str(exc), path=request.path)
        return Problem(503, "Database unavailable", "the database did not answer; retry shortly",
                       headers={"Retry-After": "1"}).response(request.path)
    except Exception:
        log.exception("request failed", path=request.path, method=request.method)
        return Problem(500, "Internal error", "the request failed; the error is logged").response(request.path)


def _http_detail(exc: web.HTTPException) -> str:
    if exc.status == 404:
        return "no such route; see /api/v1/openapi.json"
    if exc.status == 405:
        return "method not allowed on this route"
    return exc.text or exc.reason


@web.middleware
async def access(request: web.Request, handler: Handler) -> web.StreamResponse:
    scope = request.app[ROUTE_SCOPES].get(route_of(request))
    if scope is None:
        return await handler(request)
    caller = request.app[AUTHENTICATOR].caller(request)
    require(caller, scope)
    quota = await request.app[RATE_LIMITER].take(caller.identity)
    response = await handler(request)
    if quota is not None:
        response.headers.update(quota.headers())
    return response


MIDDLEWARES = (metrics, cors, problems, access)
