"""A PostgreSQL server of a test's own, which it may stop and restart (never the shared one)."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.support import free_port

BIN = Path("/usr/lib/postgresql/15/bin")


def _as_postgres(*args: str) -> list[str]:
    return ["runuser", "-u", "postgres", "--", *args]


@dataclass
class PrivatePostgres:
    data: Path
    port: int

    @property
    def dsn(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def ctl(self, action: str, *extra: str) -> None:
        subprocess.run(_as_postgres(str(BIN / "pg_ctl"), action, "-D", str(self.data), "-w", "-t", "60", *extra),
                       check=True, capture_output=True)

    def start(self) -> None:
        self.ctl("start", "-l", str(self.data / "server.log"),
                 "-o", f"-p {self.port} -k {self.data} -c listen_addresses=127.0.0.1 -c fsync=off")

    def stop(self) -> None:
        self.ctl("stop", "-m", "fast")


def private_postgres() -> PrivatePostgres:
    """initdb + start; the caller stops it and removes `data.parent`."""
    if not (BIN / "initdb").exists() or shutil.which("runuser") is None:
        pytest.skip(f"needs {BIN}/initdb and runuser to run a private PostgreSQL")
    if os.geteuid() != 0:
        pytest.skip("needs root to run initdb/pg_ctl as the postgres user (runuser)")
    # Not under pytest's tmp_path: the postgres user cannot enter root's private folders.
    home = Path(tempfile.mkdtemp(prefix="obs-private-pg-"))
    data = home / "pgdata"
    data.mkdir()
    shutil.chown(home, "postgres")
    shutil.chown(data, "postgres")
    subprocess.run(_as_postgres(str(BIN / "initdb"), "-D", str(data), "--auth=trust", "-U", "postgres"),
                   check=True, capture_output=True)
    server = PrivatePostgres(data, free_port())
    server.start()
    return server
