"""The services under test as child processes, with CPU and peak-RSS accounting from /proc."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import psycopg
import redis
from psycopg import sql

from storage.migrations import Migrator

ROOT = Path(__file__).resolve().parents[2]
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _tree(pid: int) -> list[int]:
    """pid and all its descendants (COLLECTOR_WORKERS forks workers)."""
    pids = [pid]
    for child in Path("/proc").iterdir():
        if not child.name.isdigit():
            continue
        try:
            ppid = int((child / "stat").read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue
        if ppid == pid:
            pids += _tree(int(child.name))
    return pids


def _stat_cpu(stat: str) -> float:
    """User + system CPU seconds from the text of /proc/PID/stat (fields after the command)."""
    fields = stat.rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


def cpu_seconds(pid: int) -> float:
    total = 0.0
    for p in _tree(pid):
        try:
            total += _stat_cpu(Path(f"/proc/{p}/stat").read_text())
        except (OSError, IndexError, ValueError):
            pass
    return total


def cpu_by_command(names: tuple[str, ...]) -> dict[str, float]:
    """CPU seconds so far of every process whose command name is one of `names`, by name
    (PostgreSQL's backends and background processes, redis-server). Processes that exit
    between two readings drop out, so take the difference over a phase with long-lived ones."""
    totals = dict.fromkeys(names, 0.0)
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        command = stat[stat.index("(") + 1:stat.rindex(")")]
        if command in totals:
            totals[command] += _stat_cpu(stat)
    return totals


def peak_rss_mb(pid: int) -> float:
    """Sum over the process tree of each process's peak resident set (VmHWM)."""
    total = 0
    for p in _tree(pid):
        try:
            for line in Path(f"/proc/{p}/status").read_text().splitlines():
                if line.startswith("VmHWM:"):
                    total += int(line.split()[1])
        except OSError:
            pass
    return total / 1024


@dataclass
class Service:
    name: str
    env: dict[str, str]
    metrics_port: int
    log: Path
    proc: subprocess.Popen | None = None
    cpu_start: float = 0.0

    def start(self) -> None:
        self.proc = subprocess.Popen([sys.executable, "-m", self.name], env=self.env, cwd=ROOT,
                                     stdout=open(self.log, "ab"), stderr=subprocess.STDOUT)

    def wait_ready(self, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc and self.proc.poll() is not None:
                raise RuntimeError(f"{self.name} exited: see {self.log}")
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{self.metrics_port}/ready", timeout=2) as r:
                    if r.status == 200:
                        return
            except Exception:
                pass
            time.sleep(0.1)
        raise RuntimeError(f"{self.name} not ready after {timeout}s: see {self.log}")

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(60)
            except subprocess.TimeoutExpired:
                self.proc.kill()


@dataclass
class BenchStack:
    admin_server: str
    redis_url: str
    workdir: Path
    extra_env: dict[str, str] = field(default_factory=dict)
    database: str = field(default_factory=lambda: f"obs_bench_{uuid.uuid4().hex[:10]}")
    prefix: str = field(default_factory=lambda: f"obs-bench:{uuid.uuid4().hex[:10]}:")
    services: dict[str, Service] = field(default_factory=dict)
    grpc_port: int = field(default_factory=free_port)
    http_port: int = field(default_factory=free_port)
    _poll: psycopg.Connection | None = None
    _count: str = ""

    def dsn(self, user: str = "postgres") -> str:
        return psycopg.conninfo.make_conninfo(self.admin_server, dbname=self.database, user=user)

    def create_database(self) -> None:
        with psycopg.connect(self.admin_server, autocommit=True) as conn:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(self.database)))
        with psycopg.connect(self.dsn()) as conn, Migrator(conn) as migrator:
            migrator.up()

    def start(self, names: tuple[str, ...] = ("collector", "storage")) -> None:
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.create_database()
        env = self.base_env()
        ports = {"collector": "COLLECTOR_METRICS_PORT", "storage": "STORAGE_METRICS_PORT", "api": "API_METRICS_PORT"}
        for name in names:
            port = free_port()
            env[ports[name]] = str(port)
            self.services[name] = Service(name, dict(env), port, self.workdir / f"{name}.log")
        self.start_services()

    def base_env(self) -> dict[str, str]:
        """What every service of this stack is given (ops ports aside)."""
        env = {k: v for k, v in os.environ.items()}
        env.update({
            "PYTHONPATH": str(ROOT), "OBSERVATORY_ENV_FILE": "/nonexistent",
            "DATABASE_URL": self.dsn(), "DATABASE_APP_URL": self.dsn("observatory_app"),
            "DATABASE_READONLY_URL": self.dsn("observatory_readonly"),
            "REDIS_URL": self.redis_url, "REDIS_KEY_PREFIX": self.prefix,
            "COLLECTOR_HOST": "127.0.0.1", "METRICS_HOST": "127.0.0.1", "API_HOST": "127.0.0.1",
            "COLLECTOR_OTLP_GRPC_PORT": str(self.grpc_port), "COLLECTOR_OTLP_HTTP_PORT": str(self.http_port),
            "API_PORT": str(free_port()), "LOG_LEVEL": "warning",
        })
        env.update(self.extra_env)
        return env

    def start_services(self) -> None:
        for service in self.services.values():
            service.start()
        for service in self.services.values():
            service.wait_ready()
        for service in self.services.values():
            service.cpu_start = cpu_seconds(service.proc.pid)

    def endpoint(self, protocol: str) -> str:
        if protocol == "grpc":
            return f"127.0.0.1:{self.grpc_port}"
        return f"http://127.0.0.1:{self.http_port}/v1/traces"

    def stored(self) -> int:
        """Spans committed so far, polled many times a second while the load runs.

        On plain PostgreSQL the writer folds every span it inserts into span_rollups_1m in
        the same transaction, so the sum of its span_count is exactly the committed spans,
        read from a table of a few thousand rows. count(*) over spans would scan the growing
        table on every poll (and a new connection per poll forks a backend): at 1.4 million
        spans that polling took a large share of PostgreSQL's CPU from the writer. With
        TimescaleDB the rollup is a real-time aggregate over spans, so count(*) is used there.
        """
        if self._poll is None or self._poll.closed:
            self._poll = psycopg.connect(self.dsn(), autocommit=True)
            uses_timescaledb = self._poll.execute("SELECT observatory_uses_timescaledb()").fetchone()[0]
            self._count = ("SELECT count(*) FROM spans" if uses_timescaledb
                           else "SELECT coalesce(sum(span_count), 0)::int8 FROM span_rollups_1m")
        return self._poll.execute(self._count).fetchone()[0]

    def counted(self) -> int:
        """count(*) over spans: the exact number of rows, once at the end."""
        with psycopg.connect(self.dsn()) as conn:
            return conn.execute("SELECT count(*) FROM spans").fetchone()[0]

    def usage(self) -> dict[str, dict[str, float]]:
        return {
            name: {"cpu_s": round(cpu_seconds(s.proc.pid) - s.cpu_start, 2), "peak_rss_mb": round(peak_rss_mb(s.proc.pid), 1)}
            for name, s in self.services.items()
        }

    def redis_footprint(self, settle_s: float = 10.0) -> dict[str, int]:
        """This run's keys in Redis once every stored span is acknowledged (the backlog
        counters reach 0, or after settle_s): entries left in the streams, their bytes
        (MEMORY USAGE, exact: SAMPLES 0) and the spans not yet written (the backlog)."""
        client = redis.Redis.from_url(self.redis_url)
        try:
            deadline = time.monotonic() + settle_s
            while True:
                backlog = sum(int(client.get(k) or 0) for k in client.scan_iter(match=f"{self.prefix}*:backlog"))
                if backlog == 0 or time.monotonic() > deadline:
                    break
                time.sleep(0.1)
            keys = list(client.scan_iter(match=f"{self.prefix}*"))
            streams = [k for k in keys if client.type(k) == b"stream" and not k.endswith(b":dlq")]
            return {
                "unwritten_spans": backlog,
                "stream_entries": sum(client.xlen(k) for k in streams),
                "stream_bytes": sum(client.memory_usage(k, samples=0) or 0 for k in streams),
                "all_keys_bytes": sum(client.memory_usage(k, samples=0) or 0 for k in keys),
            }
        finally:
            client.close()

    def close_poll(self) -> None:
        if self._poll is not None:
            self._poll.close()

    def stop(self, drop: bool = True) -> None:
        self.close_poll()
        for service in self.services.values():
            service.stop()
        if drop:
            with psycopg.connect(self.admin_server, autocommit=True) as conn:
                conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(self.database)))
            client = redis.Redis.from_url(self.redis_url)
            keys = list(client.scan_iter(match=f"{self.prefix}*"))
            if keys:
                client.delete(*keys)
            client.close()
