"""Redis for the CLI: one client, and descriptions of the server that leave the password out."""

from __future__ import annotations

from urllib.parse import urlsplit

from redis.asyncio import Redis

from cli.settings import CliSettings


def describe(url: str) -> str:
    parts = urlsplit(url)
    database = parts.path.lstrip("/") or "0"
    return f"{parts.hostname or '127.0.0.1'}:{parts.port or 6379} (db {database})"


def client(settings: CliSettings) -> Redis:
    return Redis.from_url(
        settings.redis_url, socket_timeout=settings.redis_timeout, socket_connect_timeout=settings.redis_timeout,
    )
