"""The secret files: the public development set and the ones docker/make-secrets.sh writes.

Several files carry the same password (a DSN and the bare password a non-Python service
reads); a mismatch would surface only as an authentication failure inside a container.
"""

from __future__ import annotations

import re
import shutil
import stat
import subprocess
from pathlib import Path
from urllib.parse import urlsplit

import psycopg
import pytest

from api.keys import digest, parse_key_entries
from tests.docker.compose import ROOT, stack

DEV_SECRETS = ROOT / "docker" / "secrets.dev"
DEV_API_KEY = "obs_dev_key_not_secret"  # public, in docker/secrets.dev/README.md and the docs' curl lines


def dsn(path: Path) -> dict[str, str]:
    return {k: str(v) for k, v in psycopg.conninfo.conninfo_to_dict(path.read_text()).items()}


def assert_consistent(folder: Path) -> None:
    admin, app, readonly = (dsn(folder / name) for name in ("database_url", "database_app_url", "database_readonly_url"))
    assert (admin["user"], app["user"], readonly["user"]) == ("postgres", "observatory_app", "observatory_readonly")
    for info in (admin, app, readonly):
        assert (info["host"], info["port"], info["dbname"]) == ("timescaledb", "5432", "llm_observatory")
        assert info["password"], "a DSN without a password cannot log in over TCP"
    assert admin["password"] == (folder / "postgres_password").read_text()
    assert readonly["password"] == (folder / "observatory_readonly_password").read_text()
    redis = urlsplit((folder / "redis_url").read_text())
    assert (redis.hostname, redis.port, redis.path) == ("redis", 6379, "/0")
    assert redis.password == (folder / "redis_password").read_text()
    for path in folder.iterdir():
        assert not path.read_text().endswith("\n") or path.suffix == ".md", f"{path.name} ends with a newline"
    entries = parse_key_entries(tuple((folder / "api_keys").read_text().splitlines()))
    assert entries and entries[0].scopes == {"traces", "usage"}, "the first key may read everything"
    (grafana,) = [entry for entry in entries if entry.name == "grafana"]
    assert grafana.scopes == {"traces"}, "Grafana's traces data source reads traces only"
    assert grafana.digest == digest((folder / "grafana_api_key").read_text()), "grafana_api_key is not the grafana entry's key"


def test_the_development_key_is_the_one_the_docs_send() -> None:
    entry = parse_key_entries(tuple((DEV_SECRETS / "api_keys").read_text().splitlines()))[0]
    assert entry.name == "dev" and entry.digest == digest(DEV_API_KEY)
    for doc in ("docs/QUICK_START.md", "docs/DOCKER_WORKFLOWS.md", "docker/secrets.dev/README.md"):
        assert f"X-API-Key: {DEV_API_KEY}" in (ROOT / doc).read_text(), f"{doc} does not show the development key"


def test_development_secrets_agree_with_each_other() -> None:
    assert_consistent(DEV_SECRETS)


def test_every_declared_secret_file_exists() -> None:
    for name, entry in stack("base")["secrets"].items():
        assert (ROOT / entry["file"]).is_file(), f"secret {name}: {entry['file']} is missing"


@pytest.fixture
def make_secrets() -> str:
    sh = shutil.which("sh")
    if sh is None:
        pytest.skip("no POSIX sh to run docker/make-secrets.sh")
    return sh


def test_make_secrets_writes_a_consistent_private_set(make_secrets: str, tmp_path: Path) -> None:
    folder = tmp_path / "secrets"
    result = subprocess.run([make_secrets, str(ROOT / "docker/make-secrets.sh"), str(folder)],
                            check=True, capture_output=True, text=True)
    assert_consistent(folder)
    # The operator's key is printed once and only its digest is stored.
    (key,) = re.findall(r"\bobs_[0-9a-f]{48}\b", result.stdout)
    assert key not in "".join(p.read_text() for p in folder.iterdir())
    assert parse_key_entries(tuple((folder / "api_keys").read_text().splitlines()))[0].digest == digest(key)
    assert set(p.name for p in folder.iterdir()) == set(stack("prod")["secrets"])
    assert stat.S_IMODE(folder.stat().st_mode) == 0o700
    # Readable inside containers that run as another user (Compose cannot chown outside Swarm).
    assert all(stat.S_IMODE(p.stat().st_mode) == 0o644 for p in folder.iterdir())
    assert (folder / "postgres_password").read_text() != (DEV_SECRETS / "postgres_password").read_text()


def test_make_secrets_keeps_what_exists(make_secrets: str, tmp_path: Path) -> None:
    folder = tmp_path / "secrets"
    script = str(ROOT / "docker/make-secrets.sh")
    subprocess.run([make_secrets, script, str(folder)], check=True, capture_output=True)
    before = {p.name: p.read_text() for p in folder.iterdir()}
    (folder / "redis_url").unlink()
    result = subprocess.run([make_secrets, script, str(folder)], check=True, capture_output=True, text=True)
    after = {p.name: p.read_text() for p in folder.iterdir()}
    assert after == before, "a rerun must not change existing passwords; a deleted URL is rebuilt from them"
    assert "created" in result.stdout and "kept" in result.stdout
    assert "API key" not in result.stdout, "a rerun keeps api_keys, so it has no new key to show"
