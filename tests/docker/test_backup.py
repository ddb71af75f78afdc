"""docker/backup/backup.sh against a real database: a restorable dump, old ones pruned, a clean stop."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time
from pathlib import Path

import psycopg
import pytest

from tests.conftest import Database
from tests.docker.compose import ROOT
from tests.support import wait_for

SCRIPT = ROOT / "docker" / "backup" / "backup.sh"


@pytest.fixture
def tools() -> dict[str, str]:
    found = {name: shutil.which(name) for name in ("sh", "pg_dump", "pg_restore")}
    missing = [name for name, path in found.items() if path is None]
    if missing:
        pytest.skip(f"{', '.join(missing)} not installed (apt-get install postgresql-client)")
    return found  # type: ignore[return-value]


def test_backup_job_dumps_prunes_and_stops_cleanly(tools: dict[str, str], fresh_database: Database, tmp_path: Path) -> None:
    info = psycopg.conninfo.conninfo_to_dict(fresh_database.admin_dsn)
    stale = tmp_path / f"{fresh_database.name}-20000101T000000Z.dump"
    stale.write_text("old")
    os.utime(stale, (time.time() - 30 * 86400,) * 2)
    password_file = tmp_path / "password"
    password_file.write_text("unused-with-trust-auth")
    env = {
        "PATH": os.environ["PATH"], "PGHOST": str(info.get("host", "127.0.0.1")), "PGPORT": str(info.get("port", 5432)),
        "PGUSER": str(info.get("user", "postgres")), "PGDATABASE": fresh_database.name,
        "PGPASSWORD_FILE": str(password_file), "BACKUP_DIR": str(tmp_path), "BACKUP_KEEP_DAYS": "7",
        "BACKUP_INTERVAL_SECONDS": "3600",
    }
    job = subprocess.Popen([tools["sh"], str(SCRIPT)], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        dumps = wait_for(lambda: list(tmp_path.glob(f"{fresh_database.name}-2*Z.dump")) and not stale.exists()
                         and list(tmp_path.glob("*Z.dump")), 60, 0.1, "a dump and the pruning")
    finally:
        job.send_signal(signal.SIGTERM)
        output, _ = job.communicate(timeout=30)
    assert job.returncode == 0, output
    assert "backup: stopping" in output and "backup: wrote" in output
    assert not list(tmp_path.glob("*.partial"))
    listing = subprocess.run([tools["pg_restore"], "--list", str(dumps[0])], capture_output=True, text=True, check=True)
    assert "TABLE public spans" in listing.stdout, "the dump holds the schema"
