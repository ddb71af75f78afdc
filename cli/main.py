"""`observatory`: parse the command line and run one command, mapping errors to exit codes.

0 success; 1 a failure (the message says what failed and what to do); 2 a usage or
configuration error; 130 interrupted. No traceback reaches the operator unless asked for
with --traceback: an unexpected error is one line that says it is a bug.
"""

from __future__ import annotations

import argparse
import sys
import traceback

import psycopg
import redis

from cli import backup, config, db, dlq, health, maintain, migrate, reset, seed, up
from cli.errors import Failure
from cli.settings import CliSettings
from common.redis_client import describe as describe_redis
from common.settings import SettingsError, load
from storage.migrations import MigrationError

COMMANDS = (migrate, maintain, seed, reset, backup, health, dlq, up, config)


def parser() -> argparse.ArgumentParser:
    root = argparse.ArgumentParser(
        prog="observatory",
        description="LLM Observatory: run and operate the trace pipeline.",
        epilog="examples:\n  observatory migrate up\n  observatory up\n  observatory seed --count 10000\n"
        "  observatory health\n\nConfiguration comes from the environment and .env (see .env.example). "
        "Exit codes: 0 ok, 1 failed, 2 usage or configuration error. Docs: docs/CLI.md",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    root.add_argument("--traceback", action="store_true", help="show the Python traceback of an unexpected error")
    subparsers = root.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for command in COMMANDS:
        command.add_parser(subparsers)
    return root


def run(argv: list[str] | None = None) -> int:
    try:
        args = parser().parse_args(argv)
    except SystemExit as exc:  # argparse: 0 after --help, 2 after a usage error it has printed
        return int(exc.code or 0)
    settings: CliSettings | None = None
    try:
        settings = load(CliSettings)
        return args.handler(args, settings)
    except SettingsError as exc:
        return _error(f"configuration error: {exc}", 2)
    except Failure as exc:
        return _error(str(exc), exc.exit_code)
    except MigrationError as exc:  # the engine's messages already say what to do
        return _error(str(exc), 1)
    except KeyboardInterrupt:
        return _error("interrupted", 130)
    except psycopg.Error as exc:
        where = db.describe(settings.database_url) if settings else "PostgreSQL"
        return _error(f"PostgreSQL at {where} failed: {db.reason(exc)}. See docs/TROUBLESHOOTING.md", 1)
    except redis.RedisError as exc:
        where = describe_redis(settings.redis_url) if settings else "Redis"
        return _error(f"Redis at {where} failed: {exc}. Is it running, and is REDIS_URL right?", 1)
    except Exception as exc:  # a bug: say so in one line, keep the traceback for who asks
        if args.traceback:
            traceback.print_exc()
        return _error(
            f"unexpected error in `{args.command}`: {type(exc).__name__}: {exc}. This is a bug; rerun with "
            "`observatory --traceback ...` and report the output", 1,
        )


def _error(message: str, code: int) -> int:
    print(f"observatory: {message}", file=sys.stderr)
    return code


def main() -> None:
    sys.exit(run())


if __name__ == "__main__":
    main()
