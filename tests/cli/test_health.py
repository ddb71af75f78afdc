"""`observatory health`: a row per dependency and service; the exit code follows a stopped service."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.cli.conftest import Cli, cli_env
from tests.conftest import Database
from tests.infra import PrivateRedisCluster
from tests.support import SHIPPED_MIGRATIONS, free_port, migration_number

pytestmark = pytest.mark.e2e


def _ready_urls(stack) -> dict[str, str]:  # type: ignore[no-untyped-def]
    return {f"{name.upper()}_READY_URL": f"http://127.0.0.1:{getattr(stack, name).metrics_port}/ready"
            for name in ("collector", "storage", "api")}


def test_health_exit_code_follows_a_stopped_service(fresh_database: Database, redis_prefix: str, tmp_path: Path, cli: Cli) -> None:
    from tests.e2e.conftest import start_stack

    stack = start_stack(fresh_database, redis_prefix, tmp_path)
    env = {**cli_env(fresh_database.admin_dsn, redis_prefix), **_ready_urls(stack)}
    try:
        healthy = cli("health", **env)
        assert healthy.code == 0, healthy.out + healthy.err
        assert "5 of 5 checks passed" in healthy.out
        for line in ("postgres", "redis", "collector", "storage", "api"):
            assert any(row.startswith(line) and " ok " in row for row in healthy.out.splitlines()), healthy.out

        stack.storage.stop()
        sick = cli("health", "--json", **env)
        assert sick.code == 1
        results = {r["check"]: r for r in json.loads(sick.out)}
        assert not results["storage"]["ok"] and "cannot connect" in results["storage"]["detail"]
        assert all(results[name]["ok"] for name in ("postgres", "redis", "collector", "api"))
        assert cli("health", "--skip", "storage", **env).code == 0
    finally:
        stack.stop()


def test_health_reports_each_unreachable_dependency(cli: Cli) -> None:
    pg, redis, ready = free_port(), free_port(), free_port()
    outcome = cli(
        "health", "--timeout", "3", "--skip", "collector", "--skip", "api",
        DATABASE_URL=f"postgresql://postgres:pw-secret@127.0.0.1:{pg}/x", REDIS_URL=f"redis://127.0.0.1:{redis}/0",
        STORAGE_READY_URL=f"http://127.0.0.1:{ready}/ready",
    )
    assert outcome.code == 1
    rows = {row.split()[0]: row for row in outcome.out.splitlines()[1:4]}
    assert set(rows) == {"postgres", "redis", "storage"} and all("FAIL" in row for row in rows.values())
    assert "0 of 3 checks passed" in outcome.out and "pw-secret" not in outcome.out


def test_health_fails_postgres_when_migrations_are_pending(cli: Cli, migrations_copy: Path) -> None:
    only_db = ("health", "--json", "--skip", "redis", "--skip", "collector", "--skip", "storage", "--skip", "api")
    current = cli(*only_db)
    assert current.code == 0 and f"{len(SHIPPED_MIGRATIONS)} migrations applied" in json.loads(current.out)[0]["detail"]
    (migrations_copy / f"{migration_number()}_extra.up.sql").write_text("CREATE TABLE extra (id int);\n")
    behind = cli(*only_db, MIGRATIONS_DIR=str(migrations_copy))
    assert behind.code == 1
    detail = json.loads(behind.out)[0]["detail"]
    assert f"1 migration(s) pending ({migration_number()}_extra" in detail and "observatory migrate up" in detail


def test_health_sees_a_redis_cluster_and_fails_while_a_master_is_down(
    cli: Cli, redis_cluster: PrivateRedisCluster,
) -> None:
    env = {"REDIS_URL": redis_cluster.url, "STREAM_SHARDS": "3"}
    healthy = cli("health", "--json", "--skip", "collector", "--skip", "storage", "--skip", "api", **env)
    results = {r["check"]: r for r in json.loads(healthy.out)}
    assert healthy.code == 0 and results["redis"]["ok"], healthy.out
    assert "cluster of 3 masters, 3 shard(s)" in results["redis"]["detail"]
    assert results["redis"]["target"].startswith("cluster 127.0.0.1:")
    redis_cluster.nodes[0].kill()  # a master (no replicas here): its shards cannot be served
    sick = cli("health", "--json", "--timeout", "3", "--skip", "collector", "--skip", "storage", "--skip", "api", **env)
    results = {r["check"]: r for r in json.loads(sick.out)}
    assert sick.code == 1 and not results["redis"]["ok"], sick.out
