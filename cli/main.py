"""`observatory`: parse the command line and run one command, mapping errors to exit codes."""

from __future__ import annotations

import argparse
import sys

from cli import config, migrate, up
from cli.errors import Failure
from cli.settings import CliSettings
from common.settings import SettingsError, load

COMMANDS = (migrate, up, config)


def parser() -> argparse.ArgumentParser:
    root = argparse.ArgumentParser(
        prog="observatory",
        description="LLM Observatory: run and operate the trace pipeline.",
        epilog="examples:\n  observatory migrate up\n  observatory up\n\nConfiguration comes from the "
        "environment and .env (see .env.example).",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    subparsers = root.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for command in COMMANDS:
        command.add_parser(subparsers)
    return root


def run(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        settings = load(CliSettings)
        return args.handler(args, settings)
    except SettingsError as exc:
        print(f"observatory: configuration error: {exc}", file=sys.stderr)
        return 2
    except Failure as exc:
        print(f"observatory: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        return 130


def main() -> None:
    sys.exit(run())


if __name__ == "__main__":
    main()
