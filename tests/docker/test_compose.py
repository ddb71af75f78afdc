"""The compose files: valid for real parsers, and in agreement with the settings and DESIGN.

Validity is checked by the Compose Specification's JSON schema (always) and by the
`docker compose` plugin or Debian's `docker-compose` when installed (skipped, with the
reason, when neither is). The contract checks read the merged stacks (tests/docker/compose.py).
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml
from jsonschema import Draft202012Validator

from api.settings import ApiSettings
from cli.settings import CliSettings
from collector.settings import CollectorSettings
from common.settings import format_default, variables
from storage.settings import StorageSettings
from tests.docker.compose import COMPOSE_FILES, ROOT, STACKS, load_file, published_ports, stack

# Compose service → the settings class its process loads.
SERVICE_SETTINGS: dict[str, type] = {
    "collector": CollectorSettings,
    "storage": StorageSettings,
    "api": ApiSettings,
    "migrate": CliSettings,
    "cli": CliSettings,
}
# Variables a service's settings class reads but its command never uses there.
UNUSED_BY = {
    # admin DSN and the read-only DSN (whose password it would set): only for RUN_MIGRATIONS,
    # off here (the `migrate` service runs them)
    "storage": {"DATABASE_URL", "DATABASE_READONLY_URL"},
    # `observatory migrate up` never touches Redis nor the services
    "migrate": {"REDIS_URL", "COLLECTOR_READY_URL", "STORAGE_READY_URL", "API_READY_URL"},
}
# The test runner's variables are the suite's own (tests/conftest.py), not settings.
TEST_RUNNER_VARIABLES = {"TEST_ADMIN_DSN", "TEST_REDIS_URL"}


def known_variables(cls: type) -> set[str]:
    names = {var.name for var, _default in variables(cls)}
    return names | {f"{name}_FILE" for name in names}


def defaults(cls: type) -> dict[str, Any]:
    return {var.name: default for var, default in variables(cls)}


def our_services(config: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {name: svc for name, svc in config["services"].items() if name in SERVICE_SETTINGS}


# --- validity ---------------------------------------------------------------------------

def compose_schema() -> dict[str, Any]:
    check_jsonschema = pytest.importorskip("check_jsonschema", reason="check-jsonschema (dev extra) ships the compose schema")
    path = Path(check_jsonschema.__file__).parent / "builtin_schemas" / "vendor" / "compose-spec.json"
    return json.loads(path.read_text())


@pytest.mark.parametrize("file_name", COMPOSE_FILES)
def test_each_file_matches_the_compose_specification(file_name: str) -> None:
    validator = Draft202012Validator(compose_schema())
    errors = sorted(validator.iter_errors(load_file(file_name)), key=lambda e: list(e.absolute_path))
    assert not errors, "\n".join(f"{file_name}: {'.'.join(map(str, e.absolute_path))}: {e.message}" for e in errors)


def test_the_schema_catches_a_misspelt_key() -> None:
    """The schema check has teeth: a key Compose does not know is an error."""
    document = load_file("docker-compose.yml")
    document["services"]["collector"]["helthcheck"] = document["services"]["collector"].pop("healthcheck")
    assert list(Draft202012Validator(compose_schema()).iter_errors(document))


def compose_command() -> tuple[list[str], bool]:
    """The compose CLI to use, and whether it is v2 (which knows `name:` and `!reset`)."""
    docker = shutil.which("docker")
    if docker and subprocess.run([docker, "compose", "version"], capture_output=True).returncode == 0:
        return [docker, "compose"], True
    legacy = shutil.which("docker-compose")
    if legacy:
        return [legacy], False
    pytest.skip("neither the `docker compose` plugin nor docker-compose is installed (apt-get install docker-compose)")


@pytest.mark.parametrize("stack_name", sorted(STACKS))
def test_each_stack_parses_with_the_compose_cli(stack_name: str, tmp_path: Path) -> None:
    command, v2 = compose_command()
    files = list(STACKS[stack_name])
    if not v2:
        if stack_name == "prod":
            pytest.skip("docker-compose 1.x cannot read `!reset` (Compose 2.24+); the schema test covers this file")
        # docker-compose 1.x predates the top-level `name:`; everything else it checks.
        files = [str(_without_name(name, tmp_path)) for name in files]
    empty_env = tmp_path / "empty.env"
    empty_env.write_text("")
    args = [*command, "--project-directory", str(ROOT), "--env-file", str(empty_env)]
    for name in files:
        args += ["-f", name]
    result = subprocess.run([*args, "config", "-q"], capture_output=True, text=True, cwd=ROOT)
    assert result.returncode == 0, result.stderr


def _without_name(file_name: str, tmp_path: Path) -> Path:
    lines = (ROOT / file_name).read_text().splitlines(keepends=True)
    copy = tmp_path / file_name
    copy.write_text("".join(line for line in lines if not line.startswith("name:")))
    return copy


# --- variables --------------------------------------------------------------------------

@pytest.mark.parametrize("stack_name", sorted(STACKS))
def test_every_variable_set_is_one_the_service_reads(stack_name: str) -> None:
    config = stack(stack_name)
    unknown = {
        f"{name}: {variable}"
        for name, svc in our_services(config).items()
        for variable in svc["environment"]
        if variable not in known_variables(SERVICE_SETTINGS[name])
    }
    assert not unknown, f"variables no settings class of that service reads: {sorted(unknown)}"


def test_the_test_runner_sets_only_the_suites_variables() -> None:
    runner = stack("test")["services"]["test-runner"]
    assert set(runner["environment"]) == TEST_RUNNER_VARIABLES
    conftest = (ROOT / "tests" / "conftest.py").read_text()
    assert all(f'"{name}"' in conftest for name in TEST_RUNNER_VARIABLES), "tests/conftest.py renamed a variable"


@pytest.mark.parametrize("stack_name", ["base", "dev", "prod"])
def test_every_address_the_defaults_get_wrong_is_set(stack_name: str) -> None:
    """A default that points at 127.0.0.1 cannot work in a container: it must be set."""
    for name, svc in our_services(stack(stack_name)).items():
        cls = SERVICE_SETTINGS[name]
        needed = {var for var, default in defaults(cls).items() if isinstance(default, str) and "127.0.0.1" in default}
        needed -= UNUSED_BY.get(name, set())
        missing = {var for var in needed if var not in svc["environment"] and f"{var}_FILE" not in svc["environment"]}
        assert not missing, f"{stack_name}/{name} leaves {sorted(missing)} at a 127.0.0.1 default"


def test_long_running_services_hold_no_admin_credentials() -> None:
    for stack_name in ("base", "dev", "prod"):
        for name in ("collector", "storage", "api"):
            env = stack(stack_name)["services"][name]["environment"]
            assert not {"DATABASE_URL", "DATABASE_URL_FILE"} & set(env), f"{stack_name}/{name} gets the admin DSN"
            assert env.get("RUN_MIGRATIONS", "false") == "false"


@pytest.mark.parametrize("stack_name", ["base", "dev", "prod"])
def test_the_api_has_a_credential_to_accept(stack_name: str) -> None:
    # Without API_KEYS or JWT_SECRET the API answers 401 to everything but health.
    env = stack(stack_name)["services"]["api"]["environment"]
    given = {name for name in ("API_KEYS", "JWT_SECRET") if env.get(name) or env.get(f"{name}_FILE")}
    assert given, f"{stack_name}/api gets neither API_KEYS(_FILE) nor JWT_SECRET(_FILE)"
    assert env.get("API_AUTH_DISABLED", "false") == "false"


RETENTION = ("RETENTION_DAYS", "COMPRESS_AFTER_DAYS", "CHUNK_INTERVAL_HOURS")


@pytest.mark.parametrize("stack_name", ["base", "dev", "prod"])
def test_retention_is_one_setting_for_writers_and_cli(stack_name: str) -> None:
    # Writers that disagree keep resetting each other's TimescaleDB policies; `cli maintain`
    # must apply what the writers do. The defaults are the settings' own.
    services = stack(stack_name)["services"]
    wanted = {name: format_default(defaults(StorageSettings)[name]) for name in RETENTION}
    for name in ("storage", "cli"):
        assert {var: services[name]["environment"].get(var) for var in RETENTION} == wanted, name
    assert services["storage"]["environment"]["MAINTENANCE_INTERVAL"] == format_default(defaults(StorageSettings)["MAINTENANCE_INTERVAL"])
    tuned = stack(stack_name, (("RETENTION_DAYS", "90"),))["services"]
    assert tuned["storage"]["environment"]["RETENTION_DAYS"] == tuned["cli"]["environment"]["RETENTION_DAYS"] == "90"


@pytest.mark.parametrize("stack_name", ["base", "dev", "prod"])
def test_file_variables_name_secrets_the_service_mounts(stack_name: str) -> None:
    config = stack(stack_name)
    for name, svc in config["services"].items():
        mounted = {s if isinstance(s, str) else s["source"] for s in svc.get("secrets", [])}
        for variable, value in svc["environment"].items():
            if name in SERVICE_SETTINGS and variable.endswith("_FILE"):
                assert value.startswith("/run/secrets/"), f"{name}: {variable}={value} is not a secret"
            if value.startswith("/run/secrets/"):
                secret = value.removeprefix("/run/secrets/")
                assert secret in mounted, f"{stack_name}/{name}: {variable} names secret {secret!r}, not mounted"
        assert mounted <= set(config["secrets"]), f"{stack_name}/{name} mounts undeclared secrets"


# --- ports, healthchecks, dependencies --------------------------------------------------

def test_published_ports_are_the_design_ports() -> None:
    collector = defaults(CollectorSettings)
    services = stack("base")["services"]
    assert sorted(port for _host, port in published_ports(services["collector"])) == sorted(
        [collector["COLLECTOR_OTLP_GRPC_PORT"], collector["COLLECTOR_OTLP_HTTP_PORT"]]
    )
    assert [port for _host, port in published_ports(services["api"])] == [defaults(ApiSettings)["API_PORT"]]
    for name in ("timescaledb", "redis", "storage", "migrate"):
        assert not services[name].get("ports"), f"{name} must not be published in the base stack"
    for name in ("prometheus", "grafana", "pgadmin"):
        assert all(host.startswith("127.0.0.1:") for host, _port in published_ports(services[name])), name


METRICS_PORT_VARIABLE = {
    "collector": "COLLECTOR_METRICS_PORT",
    "storage": "STORAGE_METRICS_PORT",
    "api": "API_METRICS_PORT",
}


@pytest.mark.parametrize("stack_name", ["base", "dev", "prod"])
def test_healthchecks_ask_the_services_ops_port(stack_name: str) -> None:
    for name, variable in METRICS_PORT_VARIABLE.items():
        svc = stack(stack_name)["services"][name]
        test = svc["healthcheck"]["test"]
        port = defaults(SERVICE_SETTINGS[name])[variable]
        assert test[:3] == ["CMD", "python", "/usr/local/bin/observatory-healthcheck"]
        assert test[3:] == [variable, str(port), "/ready"], f"{stack_name}/{name}: {test}"
        assert variable not in svc["environment"], "a changed ops port would leave Prometheus scraping the old one"


@pytest.mark.parametrize("stack_name", sorted(STACKS))
def test_dependencies_wait_for_health_or_completion(stack_name: str) -> None:
    services = stack(stack_name)["services"]
    for name, svc in services.items():
        for dependency, rule in (svc.get("depends_on") or {}).items():
            condition = rule["condition"]
            assert condition in {"service_healthy", "service_completed_successfully"}, f"{name} → {dependency}"
            if condition == "service_healthy":
                assert "healthcheck" in services[dependency], f"{name} waits for {dependency}, which has no healthcheck"
            else:
                assert services[dependency].get("restart") == "no", f"{dependency} is one-shot"


def test_storage_and_api_start_after_migrations() -> None:
    services = stack("base")["services"]
    for name in ("storage", "api", "grafana"):
        assert services[name]["depends_on"]["migrate"] == {"condition": "service_completed_successfully"}
    assert services["migrate"]["command"] == ["migrate", "up"]


def test_database_and_redis_sit_on_the_internal_network_only() -> None:
    config = stack("base")
    assert config["networks"]["backend"]["internal"] is True
    for name in ("timescaledb", "redis", "storage", "migrate"):
        assert config["services"][name]["networks"] == ["backend"], name


def test_redis_keeps_the_streams() -> None:
    settings = dict(
        line.split(None, 1) for line in (ROOT / "docker/redis/redis.conf").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    )
    assert (settings["appendonly"], settings["appendfsync"]) == ("yes", "everysec")
    assert settings["maxmemory-policy"] == "noeviction", "an evicted stream entry is a lost span"


def test_every_service_limits_its_logs_and_resources() -> None:
    for stack_name in ("base", "prod"):
        for name, svc in stack(stack_name)["services"].items():
            assert svc["logging"]["options"]["max-size"], f"{stack_name}/{name}"
            if name != "migrate" and name != "cli":
                assert svc["deploy"]["resources"]["limits"]["memory"], f"{stack_name}/{name}"


# --- dev, test, prod --------------------------------------------------------------------

def test_dev_mounts_the_source_and_restarts_on_change() -> None:
    services = stack("dev")["services"]
    for name in ("collector", "storage", "api"):
        svc = services[name]
        assert "./:/app:ro" in svc["volumes"]
        assert svc["build"]["target"] == "dev"
        assert svc["command"] == [f"python -m {name}", "/app"]
        assert (svc["environment"]["LOG_LEVEL"], svc["environment"]["LOG_FORMAT"]) == ("debug", "pretty")


def test_test_stack_is_throwaway_and_runs_the_readme_command() -> None:
    config = stack("test")
    assert config["name"] != stack("base")["name"], "the test stack must not share the main stack's containers"
    for name in ("timescaledb", "redis"):
        assert config["services"][name]["tmpfs"] and not config["services"][name].get("volumes"), name
    dockerfile = (ROOT / "docker/Dockerfile").read_text()
    assert 'CMD ["make", "test"]' in dockerfile.split("AS test", 1)[1]
    assert "make test" in (ROOT / "README.md").read_text()


def test_prod_hardens_the_services_and_runs_replicas() -> None:
    services = stack("prod")["services"]
    for name in ("collector", "storage", "api"):
        svc = services[name]
        assert svc["read_only"] is True and "no-new-privileges:true" in svc["security_opt"], name
        assert svc["cap_drop"] == ["ALL"], name
        assert svc["deploy"]["replicas"] >= 2, name
        assert not any(str(v).startswith("./") for v in svc.get("volumes", [])), f"{name} mounts source in prod"
        assert not svc.get("ports"), f"{name}: replicas cannot share a published port; the gateway publishes"
    gateway = [port for _host, port in published_ports(services["gateway"])]
    assert sorted(gateway) == sorted([4317, 4318, defaults(ApiSettings)["API_PORT"]])
    secrets = stack("prod")["secrets"]
    assert all(entry["file"].startswith("./secrets/") for entry in secrets.values())
    assert set(secrets) == set(stack("base")["secrets"])


def test_gateway_routes_each_published_port_to_the_right_service() -> None:
    """docker/envoy/envoy.yaml: listeners on the gateway's ports, clusters on the services' ports."""
    envoy = yaml.safe_load((ROOT / "docker/envoy/envoy.yaml").read_text())["static_resources"]
    clusters = {
        c["name"]: c["load_assignment"]["endpoints"][0]["lb_endpoints"][0]["endpoint"]["address"]["socket_address"]
        for c in envoy["clusters"]
    }
    routes = {}
    for listener in envoy["listeners"]:
        manager = listener["filter_chains"][0]["filters"][0]["typed_config"]
        route = manager["route_config"]["virtual_hosts"][0]["routes"][0]["route"]
        address = clusters[route["cluster"]]
        routes[listener["address"]["socket_address"]["port_value"]] = (address["address"], address["port_value"])
    collector, api = defaults(CollectorSettings), defaults(ApiSettings)
    assert routes == {
        collector["COLLECTOR_OTLP_GRPC_PORT"]: ("collector", collector["COLLECTOR_OTLP_GRPC_PORT"]),
        collector["COLLECTOR_OTLP_HTTP_PORT"]: ("collector", collector["COLLECTOR_OTLP_HTTP_PORT"]),
        api["API_PORT"]: ("api", api["API_PORT"]),
    }
    assert set(routes) == {port for _host, port in published_ports(stack("prod")["services"]["gateway"])}
    grpc = next(c for c in envoy["clusters"] if c["name"] == "collector_grpc")
    assert "http2_protocol_options" in json.dumps(grpc), "gRPC needs HTTP/2 to the collectors"
    assert all(c["type"] == "STRICT_DNS" for c in envoy["clusters"]), "replicas are found through DNS"
