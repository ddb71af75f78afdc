"""`observatory health`: PostgreSQL, Redis and each service's /ready, as a table; exit 0 only if all pass.

The checks run concurrently, each under a timeout, so one hung dependency costs seconds,
not minutes, and cannot hide the others' answers.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
from dataclasses import asdict, dataclass
from typing import Awaitable, Callable

import aiohttp
import psycopg
from rich.console import Console
from rich.table import Table

from cli import db
from cli.migrate import directory
from cli.settings import CliSettings
from common.redis_client import connect, describe, is_cluster
from common.stream import SpanStream, StreamKeys
from storage.migrations import MigrationError, discover


@dataclass(frozen=True)
class Result:
    check: str
    ok: bool
    detail: str
    target: str


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "health", help="check PostgreSQL, Redis and the services' /ready; exit 0 only if all pass",
        description="Check PostgreSQL (reachable, migrations applied), Redis (reachable; backlog and dead "
        "letters shown) and the /ready endpoint of the collector, storage writer and API "
        "(COLLECTOR_READY_URL, STORAGE_READY_URL, API_READY_URL). Prints a table; exits 0 only if every "
        "check passes, 1 otherwise.",
        epilog="examples:\n  observatory health\n  observatory health --skip api --timeout 2\n  observatory health --json",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--timeout", type=float, default=5.0, metavar="S", help="seconds each check may take (default 5)")
    parser.add_argument("--skip", action="append", default=[], choices=("postgres", "redis", "collector", "storage", "api"),
                        help="leave a check out (repeatable)")
    parser.add_argument("--json", action="store_true", help="print the results as JSON")
    parser.set_defaults(handler=_run)


async def check_postgres(settings: CliSettings) -> tuple[bool, str]:
    conn = await psycopg.AsyncConnection.connect(settings.database_url, connect_timeout=5, application_name="observatory-health")
    async with conn:
        version = (await (await conn.execute("SHOW server_version")).fetchone())[0]  # type: ignore[index]
        ext = await (await conn.execute("SELECT extversion FROM pg_extension WHERE extname = 'timescaledb'")).fetchone()
        ledger = await (await conn.execute("SELECT to_regclass('schema_migrations') IS NOT NULL")).fetchone()
        applied: set[int] = set()
        if ledger and ledger[0]:
            applied = {v for (v,) in await (await conn.execute("SELECT version FROM schema_migrations")).fetchall()}
    flavour = f"PostgreSQL {version.split()[0]}" + (f", TimescaleDB {ext[0]}" if ext else "")
    try:
        pending = [m.label for m in discover(directory(settings)) if m.version not in applied]
    except MigrationError as exc:
        return False, f"{flavour}; cannot read migrations: {exc}"
    if pending:
        return False, f"{flavour}; {len(pending)} migration(s) pending ({pending[0]}…): run `observatory migrate up`"
    return True, f"{flavour}; {len(applied)} migrations applied"


async def check_redis(settings: CliSettings) -> tuple[bool, str]:
    redis = connect(settings.redis_url, settings.redis_timeout)
    try:
        keys = StreamKeys(settings.redis_key_prefix, settings.stream_shards)
        stream = SpanStream(redis, keys)
        problem = await stream.shard_problems()
        if problem:
            return False, problem
        info = await redis.info("server")
        backlog = await stream.backlog()
        dead = await redis.xlen(keys.dlq)
        masters = len(redis.get_primaries()) if is_cluster(redis) else 0
    finally:
        await redis.aclose()
    server = f"Redis {info.get('redis_version', '?')}"
    if masters:
        server = f"{server} cluster of {masters} masters, {settings.stream_shards} shard(s)"
    detail = f"{server}; backlog {backlog:,} spans; {dead:,} dead letter(s)"
    if dead:
        detail += " (see `observatory dlq list`)"
    return True, detail


async def check_ready(url: str, timeout: float) -> tuple[bool, str]:
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=timeout)) as session:
        async with session.get(url) as answer:
            text = await answer.text()
    try:
        checks = json.loads(text).get("checks", {})
    except (ValueError, AttributeError):
        checks = {}
    failing = {k: v for k, v in checks.items() if v != "ok"}
    if answer.status == 200:
        return True, "ready" + (f" ({', '.join(checks)} ok)" if checks else "")
    reasons = "; ".join(f"{k}: {v}" for k, v in failing.items()) or text[:200]
    return False, f"HTTP {answer.status}: {reasons}"


async def _guarded(name: str, target: str, check: Callable[[], Awaitable[tuple[bool, str]]], timeout: float) -> Result:
    try:
        ok, detail = await asyncio.wait_for(check(), timeout)
    except asyncio.TimeoutError:
        ok, detail = False, f"no answer within {timeout:g}s"
    except aiohttp.ClientConnectorError as exc:
        reason = os.strerror(exc.os_error.errno) if exc.os_error.errno else str(exc)
        ok, detail = False, f"cannot connect: {reason}. Is it running, is the URL right?"
    except psycopg.Error as exc:
        ok, detail = False, f"{db.reason(exc)}: is it running, is DATABASE_URL right?"
    except Exception as exc:  # any failure is an answer for this row, not a crash of the command
        ok, detail = False, f"{type(exc).__name__}: {exc}"
    return Result(name, ok, detail, target)


async def run_checks(settings: CliSettings, timeout: float, skip: list[str]) -> list[Result]:
    checks: dict[str, tuple[str, Callable[[], Awaitable[tuple[bool, str]]]]] = {
        "postgres": (db.describe(settings.database_url), lambda: check_postgres(settings)),
        "redis": (describe(settings.redis_url), lambda: check_redis(settings)),
        "collector": (settings.collector_ready_url, lambda: check_ready(settings.collector_ready_url, timeout)),
        "storage": (settings.storage_ready_url, lambda: check_ready(settings.storage_ready_url, timeout)),
        "api": (settings.api_ready_url, lambda: check_ready(settings.api_ready_url, timeout)),
    }
    chosen = [(name, target, check) for name, (target, check) in checks.items() if name not in skip]
    return list(await asyncio.gather(*(_guarded(name, target, check, timeout) for name, target, check in chosen)))


def _run(args: argparse.Namespace, settings: CliSettings) -> int:
    results = asyncio.run(run_checks(settings, args.timeout, args.skip))
    if args.json:
        print(json.dumps([asdict(r) for r in results], indent=2))
    else:
        table = Table("check", "status", "target", "detail", title=None, box=None, pad_edge=False)
        for r in results:
            table.add_row(r.check, "[green]ok[/]" if r.ok else "[bold red]FAIL[/]", r.target, r.detail)
        console = Console()
        if not console.is_terminal:  # a log or a pipe: one line a check, however long
            console = Console(width=250)
        console.print(table)
        failed = [r.check for r in results if not r.ok]
        print(f"{len(results) - len(failed)} of {len(results)} checks passed" + (f"; failing: {', '.join(failed)}" if failed else ""))
    return 0 if all(r.ok for r in results) else 1
