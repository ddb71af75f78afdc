"""`observatory maintain`: partitions ahead, retention and compression, now rather than at the writer's next hour.

The same observatory_maintain() the writers call every MAINTENANCE_INTERVAL, with the same
settings (RETENTION_DAYS, COMPRESS_AFTER_DAYS, CHUNK_INTERVAL_HOURS, PARTITIONS_AHEAD_DAYS),
which options override for one run. On TimescaleDB it then runs the retention and
compression jobs at once, since setting a policy only schedules them.
"""

from __future__ import annotations

import argparse
import dataclasses

import psycopg

from cli import db
from cli.args import non_negative_int, positive_int
from cli.errors import Failure
from cli.settings import CliSettings
from storage.maintenance import PolicyJob, maintain, run_policies_now, uses_timescaledb

OVERRIDES = (  # option, settings field, argument type, what it sets
    ("--retention-days", "retention_days", non_negative_int, "days kept (0: forever); default RETENTION_DAYS"),
    ("--compress-after-days", "compress_after_days", non_negative_int,
     "TimescaleDB: compress chunks older than this (0: off); default COMPRESS_AFTER_DAYS"),
    ("--chunk-interval-hours", "chunk_interval_hours", positive_int,
     "TimescaleDB: hours per new chunk; default CHUNK_INTERVAL_HOURS"),
    ("--partitions-ahead-days", "partitions_ahead_days", non_negative_int,
     "PostgreSQL: daily partitions made ahead of today; default PARTITIONS_AHEAD_DAYS"),
)


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "maintain", help="create partitions ahead, drop data past retention, compress (TimescaleDB)",
        description="Run storage maintenance now, as the writers do every MAINTENANCE_INTERVAL: on PostgreSQL "
        "create daily partitions PARTITIONS_AHEAD_DAYS ahead and drop those older than RETENTION_DAYS; on "
        "TimescaleDB set the chunk interval and the retention and compression policies, then run those "
        "jobs at once (unless --policies-only). Options override the settings for this run; on "
        "TimescaleDB the policies they set stay until a writer's next maintenance run puts back its own "
        "settings, so change RETENTION_DAYS etc. for the writers to make a change last.",
        epilog="examples:\n  observatory maintain\n  observatory maintain --retention-days 7\n"
        "  observatory maintain --policies-only      # TimescaleDB: leave the jobs to their schedule",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    for option, _field, kind, text in OVERRIDES:
        parser.add_argument(option, type=kind, metavar="N", help=text)
    parser.add_argument("--policies-only", action="store_true",
                        help="TimescaleDB: set the policies but do not run their jobs now")
    parser.set_defaults(handler=_run)


def _announce(job: PolicyJob) -> None:
    verb = "dropping chunks past retention" if job.policy == "policy_retention" else "compressing chunks"
    print(f"{verb} of {job.relation} (job {job.job_id}) ...", flush=True)


def _run(args: argparse.Namespace, settings: CliSettings) -> int:
    chosen = {name: getattr(args, name) for _option, name, _kind, _text in OVERRIDES if getattr(args, name) is not None}
    policy = dataclasses.replace(settings, **chosen)
    where = db.describe(settings.database_url)
    with db.connect(settings.database_url) as conn:
        try:
            summary = maintain(conn, policy)
        except psycopg.errors.UndefinedFunction:
            raise Failure(f"the database at {where} has no observatory schema yet; run `observatory migrate up` first") from None
        print(summary)
        if summary.startswith("skipped") or args.policies_only or not uses_timescaledb(conn):
            return 0
        jobs = run_policies_now(conn, _announce)
    print(f"ran {len(jobs)} TimescaleDB job(s)" if jobs else "no retention or compression policy is set: nothing to run")
    return 0
