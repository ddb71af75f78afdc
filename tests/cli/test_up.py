"""`observatory up`: migrates, runs the three services with prefixed logs, stops them cleanly on Ctrl-C."""

from __future__ import annotations

import signal

import pytest

from tests.cli.conftest import Cli, query
from tests.support import SHIPPED_MIGRATIONS, free_port, http_get, wait_for

pytestmark = pytest.mark.e2e


def test_up_runs_the_stack_and_stops_it_on_sigint(cli: Cli, unmigrated_dsn: str) -> None:
    from tests.cli.conftest import cli_env

    ports = {name: free_port() for name in ("COLLECTOR_OTLP_GRPC_PORT", "COLLECTOR_OTLP_HTTP_PORT", "COLLECTOR_METRICS_PORT",
                                            "STORAGE_METRICS_PORT", "API_PORT", "API_METRICS_PORT")}
    env = {**cli_env(unmigrated_dsn, cli.env["REDIS_KEY_PREFIX"]), **{k: str(v) for k, v in ports.items()},
           "COLLECTOR_HOST": "127.0.0.1", "API_HOST": "127.0.0.1", "METRICS_HOST": "127.0.0.1", "LOG_LEVEL": "info"}
    proc = cli.spawn("up", **env)
    try:
        for port in ("COLLECTOR_METRICS_PORT", "STORAGE_METRICS_PORT", "API_METRICS_PORT"):
            wait_for(lambda p=ports[port]: http_get(f"http://127.0.0.1:{p}/ready", timeout=2)[0] == 200, 60, 0.2, f"{port} ready")
        assert query(unmigrated_dsn, "SELECT count(*) FROM schema_migrations") == [(len(SHIPPED_MIGRATIONS),)]  # up migrated first
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0, err
    prefixes = {line.split("|")[0].strip() for line in out.splitlines() if "|" in line}
    assert prefixes >= {"collector", "storage", "api"}
    assert "stopping (waiting for services to flush" in err
    assert f"collector  OTLP gRPC :{ports['COLLECTOR_OTLP_GRPC_PORT']}" in out and f"api        HTTP :{ports['API_PORT']}" in out


def test_up_only_runs_the_named_services_and_survives_a_repeated_sigint(cli: Cli) -> None:
    ports = {"STORAGE_METRICS_PORT": free_port(), "COLLECTOR_METRICS_PORT": free_port()}
    env = {**cli.env, **{k: str(v) for k, v in ports.items()}, "METRICS_HOST": "127.0.0.1"}
    proc = cli.spawn("up", "--only", "storage", "--no-migrate", **env)
    try:
        wait_for(lambda: http_get(f"http://127.0.0.1:{ports['STORAGE_METRICS_PORT']}/ready", timeout=2)[0] == 200,
                 60, 0.2, "storage ready")
        with pytest.raises(OSError):
            http_get(f"http://127.0.0.1:{ports['COLLECTOR_METRICS_PORT']}/ready", timeout=2)
        proc.send_signal(signal.SIGINT)
        proc.send_signal(signal.SIGINT)  # an impatient operator: stop now, still exit cleanly
        out, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0, err
    assert {line.split("|")[0].strip() for line in out.splitlines() if "|" in line} <= {"storage"}
