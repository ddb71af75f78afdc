"""Running `observatory` in tests: in-process through cli.main.run, or as a real subprocess,
with the environment pointing at the test's database and Redis key prefix."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import psycopg
import pytest

from cli.main import run
from tests.conftest import REDIS_URL, Database, drop_database
from tests.support import ROOT, service_env


@dataclass(frozen=True)
class Outcome:
    code: int
    out: str
    err: str


@dataclass
class Cli:
    """`observatory` against one database and one Redis prefix."""

    env: dict[str, str]
    monkeypatch: pytest.MonkeyPatch
    capsys: pytest.CaptureFixture[str]
    extra: dict[str, str] = field(default_factory=dict)

    def __call__(self, *argv: str, **env: str) -> Outcome:
        """In-process: fast, and what it prints is captured."""
        with self.monkeypatch.context() as patch:
            for key, value in {**self.env, **env}.items():
                patch.setenv(key, value)
            self.capsys.readouterr()
            code = run(list(argv))
            captured = self.capsys.readouterr()
        return Outcome(code, captured.out, captured.err)

    def spawn(self, *argv: str, **env: str) -> subprocess.Popen:
        """As a real process (`python -m cli ...`), for concurrency and signals."""
        return subprocess.Popen(
            [sys.executable, "-m", "cli", *argv], env=service_env(self.env, **env), cwd=ROOT,
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )

    def process(self, *argv: str, timeout: float = 120, **env: str) -> Outcome:
        proc = self.spawn(*argv, **env)
        out, err = proc.communicate(timeout=timeout)
        return Outcome(proc.returncode, out, err)


def cli_env(database_dsn: str, prefix: str, **extra: str) -> dict[str, str]:
    app = psycopg.conninfo.make_conninfo(database_dsn, user="observatory_app")
    readonly = psycopg.conninfo.make_conninfo(database_dsn, user="observatory_readonly")
    return {
        "DATABASE_URL": database_dsn, "DATABASE_APP_URL": app, "DATABASE_READONLY_URL": readonly,
        "REDIS_URL": REDIS_URL, "REDIS_KEY_PREFIX": prefix, "OBSERVATORY_ENV_FILE": "/nonexistent",
        "LOG_LEVEL": "warning", **extra,
    }


@pytest.fixture
def cli(fresh_database: Database, redis_prefix: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> Cli:
    return Cli(cli_env(fresh_database.admin_dsn, redis_prefix), monkeypatch, capsys)


@pytest.fixture
def unmigrated_dsn() -> Iterator[str]:
    """The DSN of a database that does not exist yet (the CLI creates it); dropped afterwards."""
    import uuid

    from tests.conftest import ADMIN_DSN

    name = f"obs_test_cli_{uuid.uuid4().hex[:12]}"
    yield psycopg.conninfo.make_conninfo(ADMIN_DSN, dbname=name)
    drop_database(name)


@pytest.fixture
def migrations_copy(tmp_path: Path) -> Path:
    """A private copy of migrations/ a test may change."""
    folder = tmp_path / "migrations"
    folder.mkdir()
    for path in (ROOT / "migrations").glob("*.sql"):
        (folder / path.name).write_text(path.read_text())
    return folder


def schema_dump(dsn: str) -> str:
    """The database's schema as pg_dump prints it, minus lines that name versions or dates."""
    done = subprocess.run(["pg_dump", "--schema-only", "--no-comments", "--dbname", dsn],
                          capture_output=True, text=True, check=True)
    return "\n".join(line for line in done.stdout.splitlines()
                     if not line.startswith("-- Dumped") and not line.startswith("\\restrict") and not line.startswith("\\unrestrict"))


def query(dsn: str, text: str, params: tuple = ()) -> list[tuple]:
    with psycopg.connect(dsn, autocommit=True) as conn:
        return conn.execute(text, params).fetchall()  # type: ignore[arg-type]
