"""Prometheus config, alert rules and the PromQL of the pipeline dashboard.

promtool (Debian's `prometheus` package) checks the config and the rules, runs the rules'
unit tests, and parses every dashboard expression; the metric names they use, and the
label values they match on, are checked against what the services register and set.
"""

from __future__ import annotations

import importlib
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import prometheus_client
import pytest
import yaml

from api.settings import ApiSettings
from collector.settings import CollectorSettings
from common.settings import variables
from storage.settings import StorageSettings
from tests.docker.compose import ROOT, load_json, stack

PROMETHEUS = ROOT / "docker" / "prometheus"
DASHBOARD = "docker/grafana/dashboards/pipeline-health.json"

METRIC_MODULES = ("collector.metrics", "storage.metrics", "api.metrics")


def promtool() -> str:
    found = shutil.which("promtool")
    if found is None:
        pytest.skip("promtool is not installed (apt-get install prometheus)")
    return found


def run_promtool(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([promtool(), *args], capture_output=True, text=True, cwd=PROMETHEUS, timeout=60)


def test_config_is_valid() -> None:
    result = run_promtool("check", "config", "prometheus.yml")
    assert result.returncode == 0, result.stdout + result.stderr


def test_alert_rules_are_valid() -> None:
    result = run_promtool("check", "rules", "alerts.yml")
    assert result.returncode == 0, result.stdout + result.stderr


def test_alerts_fire_when_they_should() -> None:
    result = run_promtool("test", "rules", "alerts.test.yml")
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_issue_asks_for_these_alerts() -> None:
    rules = yaml.safe_load((PROMETHEUS / "alerts.yml").read_text())
    names = {rule["alert"] for group in rules["groups"] for rule in group["rules"]}
    assert {
        "ObservatoryCollectorRefusingData", "ObservatoryStreamLagGrowing", "ObservatoryDeadLetters",
        "ObservatoryWriterDown", "ObservatoryApiErrorRate", "ObservatoryApiSlow", "ObservatoryDatabaseNotReady",
    } <= names


def dashboard_expressions() -> list[tuple[str, str]]:
    return [
        (panel["title"], target["expr"])
        for panel in load_json(DASHBOARD)["panels"]
        for target in panel.get("targets", [])
    ]


def test_every_dashboard_expression_parses(tmp_path: Path) -> None:
    # promtool has no "parse this expression" command; recording rules are parsed in full.
    rules = [
        {"record": f"dashboard:expr_{n}", "expr": expr.replace("$__rate_interval", "1m")}
        for n, (_title, expr) in enumerate(dashboard_expressions())
    ]
    assert rules, "the pipeline dashboard has no queries"
    path = tmp_path / "dashboard-rules.yml"
    path.write_text(yaml.safe_dump({"groups": [{"name": "dashboard", "rules": rules}]}))
    result = subprocess.run([promtool(), "check", "rules", str(path)], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def registered_metrics() -> set[str]:
    for module in METRIC_MODULES:
        importlib.import_module(module)
    return set(prometheus_client.REGISTRY._names_to_collectors)  # noqa: SLF001 - every sample name


def used_metrics() -> dict[str, str]:
    """Metric name → where it is used, over the alert rules and the dashboard."""
    sources = [("alerts.yml", (PROMETHEUS / "alerts.yml").read_text())]
    sources += [(f"dashboard panel {title!r}", expr) for title, expr in dashboard_expressions()]
    used: dict[str, str] = {}
    for where, text in sources:
        for name in re.findall(r"\bobservatory_[a-z0-9_]+", text):
            used.setdefault(re.sub(r"_(bucket|sum|count)$", "", name), where)
    return used


def test_metric_names_exist() -> None:
    known = registered_metrics()
    missing = {name: where for name, where in used_metrics().items() if name not in known}
    assert not missing, f"metrics used but defined nowhere: {missing}"


def scrape_jobs() -> dict[str, dict[str, Any]]:
    config = yaml.safe_load((PROMETHEUS / "prometheus.yml").read_text())
    return {job["job_name"]: job for job in config["scrape_configs"]}


def test_every_service_is_scraped_on_its_ops_port() -> None:
    ports = {
        "collector": (CollectorSettings, "COLLECTOR_METRICS_PORT"),
        "storage": (StorageSettings, "STORAGE_METRICS_PORT"),
        "api": (ApiSettings, "API_METRICS_PORT"),
    }
    jobs = scrape_jobs()
    services = stack("base")["services"]
    for service, (cls, variable) in ports.items():
        discovery = jobs[service]["dns_sd_configs"][0]
        expected = next(default for var, default in variables(cls) if var.name == variable)
        assert (discovery["names"], discovery["type"], discovery["port"]) == ([service], "A", expected)
        assert service in services, f"scrape target {service} is no compose service"
    assert "backend" in services["prometheus"]["networks"], "Prometheus must reach the ops ports"


# Label values the services set (storage/app.py, collector/metrics.py): an alert matching a
# value no code sets never fires, and promtool cannot tell.
LABEL_VALUES = {
    ("observatory_storage_db_errors_total", "kind"): {"unavailable", "data"},
    ("observatory_storage_maintenance_runs_total", "outcome"): {"ok", "failed"},
}


def test_label_values_matched_are_ones_the_services_set() -> None:
    texts = [(PROMETHEUS / "alerts.yml").read_text()] + [expr for _title, expr in dashboard_expressions()]
    for text in texts:
        for name, label, value in re.findall(r"(observatory_[a-z0-9_]+)\{[^}]*?\b([a-z_]+)=~?\"([^\"]*)\"", text):
            allowed = LABEL_VALUES.get((name, label))
            if allowed is not None:
                assert set(value.split("|")) <= allowed, f"{name}{{{label}={value!r}}}: the services set {sorted(allowed)}"


def test_storage_stream_gauges_are_on_the_dashboard() -> None:
    used = used_metrics()
    assert {"observatory_storage_stream_lag_entries", "observatory_storage_stream_pending_entries"} <= set(used)

