"""Private PostgreSQL and Redis servers for tests that kill or restart them.

The shared servers on 5432/6379 are never touched by such tests: each gets its own data
directory under a tmp dir and a free port. The fixtures skip (with the reason) when the
server binaries are not installed.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import redis as redis_sync

from tests.support import free_port, wait_for

PG_BIN = Path(os.environ.get("TEST_PG_BIN", "/usr/lib/postgresql/15/bin"))


def _as_postgres(args: list[str]) -> list[str]:
    if os.geteuid() == 0:  # initdb and postgres refuse to run as root
        return ["runuser", "-u", "postgres", "--", *args]
    return args


@dataclass
class PrivateRedis:
    """appendfsync None runs without AOF (nothing survives a restart), else AOF with that
    fsync policy ("always" or "everysec")."""

    directory: Path
    appendfsync: str | None = None
    extra: tuple[str, ...] = ()  # more redis-server arguments, e.g. ("--maxmemory", "25mb")
    port: int = 0
    proc: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> "PrivateRedis":
        binary = shutil.which("redis-server")
        if binary is None:
            pytest.skip("redis-server is not installed")
        self.port = self.port or free_port()
        self.directory.mkdir(parents=True, exist_ok=True)
        persistence = ["--appendonly", "no"] if self.appendfsync is None else [
            "--appendonly", "yes", "--appendfsync", self.appendfsync]
        self.proc = subprocess.Popen(
            [binary, "--port", str(self.port), "--bind", "127.0.0.1", "--dir", str(self.directory), *persistence,
             "--save", "", "--daemonize", "no", "--logfile", str(self.directory / "redis.log"), *self.extra],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        client = redis_sync.Redis(port=self.port, socket_timeout=1)
        wait_for(client.ping, 20, 0.05, "private redis to answer")
        client.close()
        return self

    def kill(self) -> None:
        """SIGKILL: what a crash or an OOM kill does; only what AOF fsynced survives."""
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(10)

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(20)


@dataclass
class PrivatePostgres:
    """A throwaway cluster. Its directory is made under /tmp (not pytest's tmp_path, which
    the postgres user cannot enter) and removed by `remove()`."""

    directory: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="obs-test-pg-")))
    port: int = 0
    started: bool = False

    @property
    def admin_dsn(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    dsn = admin_dsn

    def init(self) -> "PrivatePostgres":
        if not (PG_BIN / "initdb").exists():
            pytest.skip(f"PostgreSQL server binaries not found in {PG_BIN}")
        if os.geteuid() == 0 and shutil.which("runuser") is None:
            pytest.skip("needs runuser to run initdb/pg_ctl as the postgres user")
        self.port = self.port or free_port()
        self.directory.mkdir(parents=True, exist_ok=True)
        if os.geteuid() == 0:
            shutil.chown(self.directory, "postgres", "postgres")
            os.chmod(self.directory, 0o700)
        done = subprocess.run(_as_postgres([str(PG_BIN / "initdb"), "-D", str(self.directory / "data"), "-U", "postgres",
                                            "--auth=trust", "-E", "UTF8", "--no-sync"]),
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        if done.returncode:
            raise RuntimeError(f"initdb failed: {done.stderr}")
        return self

    def remove(self) -> None:
        self.stop("immediate")
        shutil.rmtree(self.directory, ignore_errors=True)

    def start(self) -> "PrivatePostgres":
        options = f"-p {self.port} -c listen_addresses=127.0.0.1 -k {self.directory} -c fsync=off"
        subprocess.run(_as_postgres([str(PG_BIN / "pg_ctl"), "-D", str(self.directory / "data"), "-o", options,
                                     "-l", str(self.directory / "postgres.log"), "-w", "start"]),
                       check=True, stdout=subprocess.DEVNULL)
        self.started = True
        return self

    def stop(self, mode: str = "fast") -> None:
        if self.started:
            subprocess.run(_as_postgres([str(PG_BIN / "pg_ctl"), "-D", str(self.directory / "data"), "-m", mode,
                                         "-w", "stop"]), check=False, stdout=subprocess.DEVNULL)
            self.started = False

    def restart(self, down_for: float = 0.0) -> None:
        self.stop("immediate")
        time.sleep(down_for)  # a real outage lasts a while; there is no condition to await here
        self.start()
