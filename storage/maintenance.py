"""Partitions ahead, retention and TimescaleDB policies: one call to observatory_maintain().

The SQL function does the work (migrations/0001_initial.up.sql) so that the writer's role
needs no DDL rights and the CLI can run the same maintenance: `maintain(conn, settings)`.
"""

from __future__ import annotations

import psycopg

from storage.settings import RetentionSettings

_MAINTAIN = "SELECT observatory_maintain(%s, %s, make_interval(hours => %s), %s)"


def _args(policy: RetentionSettings) -> tuple[int, int, int, int]:
    return (policy.retention_days, policy.compress_after_days, policy.chunk_interval_hours,
            policy.partitions_ahead_days)


def maintain(conn: psycopg.Connection, policy: RetentionSettings) -> str:
    """Run maintenance once; returns the function's one-line summary."""
    row = conn.execute(_MAINTAIN, _args(policy)).fetchone()
    if not conn.autocommit:
        conn.commit()
    return str(row[0]) if row else ""


async def maintain_async(conn: psycopg.AsyncConnection, policy: RetentionSettings) -> str:
    row = await (await conn.execute(_MAINTAIN, _args(policy))).fetchone()
    if not conn.autocommit:
        await conn.commit()
    return str(row[0]) if row else ""
