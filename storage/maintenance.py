"""Partitions ahead, retention and TimescaleDB policies: one call to observatory_maintain().

The SQL function does the work (migrations/0001_initial.up.sql) so that the writer's role
needs no DDL rights and the CLI can run the same maintenance: `maintain(conn, settings)`.
On TimescaleDB that call only sets the retention and compression policies, whose jobs
TimescaleDB runs on its own schedule; `run_policies_now` runs them at once (as the owner).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import psycopg

from storage.settings import RetentionSettings

# The span tables, then logs and metric_points (migrations/0004), with the same policy; each
# in a transaction of its own, so that the locks one takes (a new partition locks its parent)
# are never held while the other waits for a reader of its tables: a reader of both (the
# API's trace answer) would otherwise deadlock with it.
_MAINTAIN = (
    "SELECT observatory_maintain(%s, %s, make_interval(hours => %s), %s)",
    "SELECT observatory_maintain_signals(%s, %s, make_interval(hours => %s), %s)",
)


def _args(policy: RetentionSettings) -> tuple[int, int, int, int]:
    return (policy.retention_days, policy.compress_after_days, policy.chunk_hours,
            policy.partitions_ahead_days)


def maintain(conn: psycopg.Connection, policy: RetentionSettings) -> str:
    """Run maintenance once; returns the functions' one-line summaries."""
    summaries = []
    for statement in _MAINTAIN:
        row = conn.execute(statement, _args(policy)).fetchone()
        if not conn.autocommit:
            conn.commit()
        summaries.append(str(row[0]) if row else "")
    return "; ".join(summaries)


async def maintain_async(conn: psycopg.AsyncConnection, policy: RetentionSettings) -> str:
    summaries = []
    for statement in _MAINTAIN:
        row = await (await conn.execute(statement, _args(policy))).fetchone()
        if not conn.autocommit:
            await conn.commit()
        summaries.append(str(row[0]) if row else "")
    return "; ".join(summaries)


# Retention first: compressing chunks that are about to be dropped is wasted work.
_POLICY_JOBS = """
SELECT j.job_id, j.proc_name, coalesce(c.view_name, j.hypertable_name) AS relation
FROM timescaledb_information.jobs j
LEFT JOIN timescaledb_information.continuous_aggregates c ON c.materialization_hypertable_name = j.hypertable_name
WHERE j.proc_name IN ('policy_retention', 'policy_compression')
  AND coalesce(c.view_name, j.hypertable_name) IN ('spans', 'span_events', 'span_links', 'span_rollups_1m', 'span_rollups_1h',
                                                   'logs', 'metric_points')
ORDER BY j.proc_name DESC, relation
"""


@dataclass(frozen=True)
class PolicyJob:
    job_id: int
    policy: str  # policy_retention or policy_compression
    relation: str  # the table, or the continuous aggregate the job's hypertable materialises


def uses_timescaledb(conn: psycopg.Connection) -> bool:
    row = conn.execute("SELECT observatory_uses_timescaledb()").fetchone()
    return bool(row and row[0])


def policy_jobs(conn: psycopg.Connection) -> list[PolicyJob]:
    return [PolicyJob(*row) for row in conn.execute(_POLICY_JOBS).fetchall()]


def run_policies_now(conn: psycopg.Connection, on_start: Callable[[PolicyJob], None] | None = None) -> list[PolicyJob]:
    """Run the TimescaleDB retention and compression jobs now; needs autocommit (run_job is a procedure)."""
    jobs = policy_jobs(conn)
    for job in jobs:
        if on_start is not None:
            on_start(job)
        conn.execute("CALL run_job(%s)", (job.job_id,))
    return jobs
