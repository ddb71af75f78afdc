"""`observatory up`: migrates, runs the three services with prefixed logs, stops them cleanly on Ctrl-C."""

from __future__ import annotations

import signal

import pytest

from tests.cli.conftest import Cli, query
from tests.support import free_port, http_get, wait_for

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
        assert query(unmigrated_dsn, "SELECT count(*) FROM schema_migrations") == [(1,)]  # up migrated first
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0, err
    prefixes = {line.split("|")[0].strip() for line in out.splitlines() if "|" in line}
    assert prefixes >= {"collector", "storage", "api"}
    assert "stopping (waiting for services to flush)" in err
