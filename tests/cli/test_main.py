"""The CLI's manners: help with examples everywhere, exit codes, no tracebacks, no passwords."""

from __future__ import annotations

import argparse

import pytest

from cli import main
from tests.cli.conftest import Cli
from tests.support import SHIPPED_MIGRATIONS, free_port


def _subcommands(parser: argparse.ArgumentParser, path: tuple[str, ...] = ()) -> list[tuple[tuple[str, ...], argparse.ArgumentParser]]:
    found = [(path, parser)]
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, child in action.choices.items():
                found += _subcommands(child, (*path, name))
    return found


def test_every_command_has_help_with_an_example() -> None:
    commands = _subcommands(main.parser())
    assert len(commands) > 15
    for path, parser in commands:
        assert "example" in (parser.epilog or ""), f"`observatory {' '.join(path)} --help` shows no example"
        assert parser.description or not path, f"`observatory {' '.join(path)}` has no description"


def test_help_exits_zero_and_a_usage_error_exits_two(cli: Cli) -> None:
    assert cli("--help").code == 0
    assert cli("migrate", "down", "--help").code == 0
    unknown = cli("frobnicate")
    assert unknown.code == 2 and "invalid choice" in unknown.err
    conflicting = cli("migrate", "down", "--steps", "1", "--to", "0")
    assert conflicting.code == 2 and "not allowed with" in conflicting.err


def test_a_bad_setting_is_a_usage_error_naming_the_variable(cli: Cli) -> None:
    outcome = cli("migrate", "status", REDIS_TIMEOUT="soon")
    assert outcome.code == 2 and "REDIS_TIMEOUT must be a number, got 'soon'" in outcome.err


def test_an_unreachable_database_names_the_server_and_what_to_do_but_not_the_password(cli: Cli) -> None:
    port = free_port()
    outcome = cli("migrate", "status", DATABASE_URL=f"postgresql://postgres:top-secret@127.0.0.1:{port}/llm")
    assert outcome.code == 1
    assert f"cannot connect to PostgreSQL at 127.0.0.1:{port} as postgres (database llm)" in outcome.err
    assert "Is it running" in outcome.err and "TROUBLESHOOTING" in outcome.err
    assert "top-secret" not in outcome.err + outcome.out and "Traceback" not in outcome.err


def test_an_unexpected_error_is_one_line_unless_a_traceback_is_asked_for(cli: Cli, monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(_args: argparse.Namespace, _settings: object) -> int:
        raise RuntimeError("boom")

    from cli import config

    monkeypatch.setattr(config, "_run", broken)
    monkeypatch.setattr(main, "parser", _parser_with(config, broken))
    outcome = cli("config", "env-example")
    assert outcome.code == 1 and outcome.err.count("\n") == 1
    assert "unexpected error in `config`: RuntimeError: boom. This is a bug" in outcome.err
    verbose = cli("--traceback", "config", "env-example")
    assert verbose.code == 1 and "Traceback (most recent call last)" in verbose.err


def _parser_with(config_module: object, handler: object):  # type: ignore[no-untyped-def]
    original = main.parser

    def parser() -> argparse.ArgumentParser:
        root = original()
        for action in root._actions:
            if isinstance(action, argparse._SubParsersAction):
                action.choices["config"].set_defaults(handler=handler)
        return root

    return parser


def test_the_cli_runs_as_a_module_with_exit_codes(cli: Cli) -> None:
    ok = cli.process("migrate", "status")
    assert ok.code == 0 and f"{len(SHIPPED_MIGRATIONS)} applied, 0 pending" in ok.out
    usage = cli.process("seed")
    assert usage.code == 2 and "--count" in usage.err
