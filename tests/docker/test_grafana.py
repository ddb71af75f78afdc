"""Grafana provisioning and dashboards; every SQL query of the dashboards runs for real.

Spans are built as OTLP protobuf requests and stored by the writer's own code
(storage.decode.request_rows, storage.writer.SpanWriter); each dashboard query, with
Grafana's macros expanded as Grafana's PostgreSQL data source expands them, then runs as
the read-only role Grafana uses, so a dashboard cannot name a column that does not exist
or compute something other than what its title says.
"""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from decimal import Decimal
from typing import Any

import psycopg
import pytest
import yaml
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.trace.v1.trace_pb2 import Span, Status

from common.otlp import key_value as kv
from storage.decode import request_rows
from storage.writer import SpanWriter
from tests.conftest import Database, create_database, drop_database
from tests.docker.compose import ROOT, load_json, stack

DASHBOARDS = sorted((ROOT / "docker/grafana/dashboards").glob("*.json"))
PROVISIONING = ROOT / "docker/grafana/provisioning"
SQL_DASHBOARD = "docker/grafana/dashboards/llm-usage.json"


# --- provisioning -------------------------------------------------------------------------

def datasource_uids() -> dict[str, str]:
    config = yaml.safe_load((PROVISIONING / "datasources/datasources.yml").read_text())
    return {source["uid"]: source["type"] for source in config["datasources"]}


def all_targets(dashboard: dict[str, Any]) -> Iterator[tuple[dict[str, Any], dict[str, Any]]]:
    for panel in dashboard["panels"]:
        for target in panel.get("targets", []):
            yield panel, target


@pytest.mark.parametrize("path", DASHBOARDS, ids=lambda p: p.name)
def test_dashboards_use_only_provisioned_datasources(path: Any) -> None:
    dashboard = load_json(str(path.relative_to(ROOT)))
    uids = datasource_uids()
    for panel, target in all_targets(dashboard):
        for source in (panel["datasource"], target["datasource"]):
            assert uids.get(source["uid"]) == source["type"], f"{panel['title']}: {source}"
    ids = [panel["id"] for panel in dashboard["panels"]]
    assert len(ids) == len(set(ids)), "panel ids repeat"


def test_dashboard_uids_are_unique_and_the_provider_reads_their_folder() -> None:
    uids = [load_json(str(path.relative_to(ROOT)))["uid"] for path in DASHBOARDS]
    assert len(uids) == len(set(uids)) == 2
    provider = yaml.safe_load((PROVISIONING / "dashboards/dashboards.yml").read_text())["providers"][0]
    grafana = stack("base")["services"]["grafana"]
    assert f"./docker/grafana/dashboards:{provider['options']['path']}:ro" in grafana["volumes"]
    home = grafana["environment"]["GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH"]
    assert home.removeprefix(provider["options"]["path"] + "/") in {p.name for p in DASHBOARDS}


def test_database_datasource_logs_in_as_the_read_only_role() -> None:
    config = yaml.safe_load((PROVISIONING / "datasources/datasources.yml").read_text())
    database = next(s for s in config["datasources"] if s["uid"] == "observatory-db")
    assert database["user"] == "observatory_readonly"
    assert database["secureJsonData"]["password"] == "${OBSERVATORY_READONLY_PASSWORD}"
    assert "OBSERVATORY_READONLY_PASSWORD" in " ".join(stack("base")["services"]["grafana"]["entrypoint"])


# --- seeded spans ---------------------------------------------------------------------------


@dataclass(frozen=True)
class SeedSpan:
    service: str
    trace: int
    span: int
    parent: int | None
    name: str
    offset_s: float
    duration_s: float
    llm: dict[str, object]
    error: bool = False


NOW_NS = time.time_ns() - 30 * 60 * 1_000_000_000
SEED = (
    SeedSpan("checkout", 1, 1, None, "POST /checkout", 0, 2.0, {}),
    SeedSpan("checkout", 1, 2, 1, "chat gpt-4o-mini", 0.5, 0.8, {
        "gen_ai.provider.name": "openai", "gen_ai.request.model": "gpt-4o-mini",
        "gen_ai.usage.input_tokens": 100, "gen_ai.usage.output_tokens": 50, "gen_ai.usage.cost": 0.01}),
    SeedSpan("checkout", 2, 3, None, "chat gpt-4o-mini", 60, 0.2, {
        "gen_ai.provider.name": "openai", "gen_ai.request.model": "gpt-4o-mini",
        "gen_ai.usage.input_tokens": 10, "gen_ai.usage.output_tokens": 0, "gen_ai.usage.cost": 0.001}, error=True),
    SeedSpan("support-bot", 3, 4, None, "agent", 120, 5.0, {}),
    SeedSpan("support-bot", 3, 5, 4, "chat claude-3-5-sonnet", 120.5, 4.0, {
        "gen_ai.provider.name": "anthropic", "gen_ai.request.model": "claude-3-5-sonnet",
        "gen_ai.usage.input_tokens": 1000, "gen_ai.usage.output_tokens": 500, "gen_ai.usage.cost": 0.5}),
)


def trace_id(n: int) -> bytes:
    return n.to_bytes(16, "big")


def seed_request() -> ExportTraceServiceRequest:
    request = ExportTraceServiceRequest()
    for service in sorted({s.service for s in SEED}):
        resource_spans = request.resource_spans.add()
        resource_spans.resource.attributes.append(kv("service.name", service))
        scope = resource_spans.scope_spans.add()
        for seed in (s for s in SEED if s.service == service):
            start = NOW_NS + int(seed.offset_s * 1e9)
            scope.spans.add(
                trace_id=trace_id(seed.trace), span_id=seed.span.to_bytes(8, "big"),
                parent_span_id=seed.parent.to_bytes(8, "big") if seed.parent else b"", name=seed.name,
                kind=Span.SPAN_KIND_CLIENT, start_time_unix_nano=start, end_time_unix_nano=start + int(seed.duration_s * 1e9),
                status=Status(code=Status.STATUS_CODE_ERROR if seed.error else Status.STATUS_CODE_OK),
                attributes=[kv(k, v) for k, v in seed.llm.items()],
            )
    return request


@pytest.fixture(scope="module")
def seeded() -> Iterator[Database]:
    database = create_database()

    async def write() -> None:
        async with await psycopg.AsyncConnection.connect(database.app_dsn, autocommit=True) as conn:
            assert await SpanWriter(conn).write(request_rows(seed_request())) == len(SEED)

    asyncio.run(write())
    yield database
    drop_database(database.name)


# --- Grafana's macros -----------------------------------------------------------------------

RANGE_FROM = datetime.now(timezone.utc) - timedelta(hours=6)
RANGE_TO = datetime.now(timezone.utc) + timedelta(minutes=5)


def expand(sql: str, services: list[str]) -> str:
    """The SQL Grafana's PostgreSQL data source sends, for a 6-hour range and a 1-minute interval."""
    time_from, time_to = RANGE_FROM.strftime("%Y-%m-%dT%H:%M:%SZ"), RANGE_TO.strftime("%Y-%m-%dT%H:%M:%SZ")
    sql = re.sub(r"\$__timeFilter\((\w+)\)", rf"\1 BETWEEN '{time_from}' AND '{time_to}'", sql)
    sql = re.sub(r"\$__timeGroupAlias\((\w+),\s*\$__interval\)", r'floor(extract(epoch from \1)/60)*60 AS "time"', sql)
    sql = sql.replace("$service", ", ".join(f"'{s}'" for s in services))
    assert "$" not in sql, f"a macro or variable this test does not expand: {sql}"
    return sql


def sql_targets() -> list[tuple[str, str]]:
    dashboard = load_json(SQL_DASHBOARD)
    queries = [(panel["title"], target["rawSql"]) for panel, target in all_targets(dashboard)]
    queries += [(f"variable {v['name']}", v["query"]) for v in dashboard["templating"]["list"] if v["type"] == "query"]
    return queries


def run(database: Database, sql: str, services: list[str] | None = None) -> tuple[list[str], list[tuple]]:
    # As Grafana does: the read-only role, inside a read-only session.
    with psycopg.connect(database.readonly_dsn, autocommit=True) as conn, conn.cursor() as cur:
        cur.execute(expand(sql, services or ["checkout", "support-bot"]))  # type: ignore[arg-type]
        return [c.name for c in cur.description or []], cur.fetchall()


@pytest.mark.parametrize(("title", "sql"), sql_targets(), ids=[t for t, _ in sql_targets()])
def test_every_dashboard_query_runs_and_finds_the_seeded_spans(seeded: Database, title: str, sql: str) -> None:
    columns, rows = run(seeded, sql)
    assert rows, f"{title}: no rows for seeded data"
    if '"time"' in expand(sql, ["x"]):
        assert columns[0] == "time", f"{title}: a time series needs its time column first"
        for row in rows:
            assert isinstance(row[0], (int, float, Decimal))
            assert RANGE_FROM.timestamp() - 60 <= float(row[0]) <= RANGE_TO.timestamp()


def panel_sql(title: str) -> str:
    return next(sql for t, sql in sql_targets() if t == title)


def test_the_service_variable_lists_the_services(seeded: Database) -> None:
    _, rows = run(seeded, panel_sql("variable service"))
    assert [r[0] for r in rows] == ["checkout", "support-bot"]


def test_headline_numbers_count_llm_calls_only(seeded: Database) -> None:
    assert run(seeded, panel_sql("LLM calls"))[1] == [(3,)]
    assert float(run(seeded, panel_sql("Error rate"))[1][0][0]) == pytest.approx(1 / 3)
    assert run(seeded, panel_sql("Tokens"))[1] == [(1110, 550)]
    assert run(seeded, panel_sql("Cost"))[1][0][0] == pytest.approx(0.511)


def test_the_service_filter_applies(seeded: Database) -> None:
    assert run(seeded, panel_sql("LLM calls"), ["support-bot"])[1] == [(1,)]


def test_usage_table_sums_by_service_and_model(seeded: Database) -> None:
    columns, rows = run(seeded, panel_sql("Usage by service and model"))
    table = {(r[columns.index("service")], r[columns.index("model")]): dict(zip(columns, r)) for r in rows}
    claude = table[("support-bot", "claude-3-5-sonnet")]
    assert (claude["calls"], claude["errors"], claude["input_tokens"], claude["output_tokens"]) == (1, 0, 1000, 500)
    mini = table[("checkout", "gpt-4o-mini")]
    assert (mini["calls"], mini["errors"], mini["cost_usd"]) == (2, 1, pytest.approx(0.011))
    assert rows[0][columns.index("model")] == "claude-3-5-sonnet", "most expensive first"


def test_slowest_and_most_expensive_traces(seeded: Database) -> None:
    columns, rows = run(seeded, panel_sql("Slowest traces"))
    slowest = [dict(zip(columns, row)) for row in rows]
    assert [(r["trace_id"], r["root_span"]) for r in slowest] == [
        (trace_id(3).hex(), "agent"), (trace_id(1).hex(), "POST /checkout"), (trace_id(2).hex(), "chat gpt-4o-mini"),
    ], "root spans only, slowest first"
    assert slowest[0]["duration_seconds"] == pytest.approx(5.0)
    columns, rows = run(seeded, panel_sql("Most expensive traces"))
    expensive = [dict(zip(columns, row)) for row in rows]
    assert [r["trace_id"] for r in expensive] == [trace_id(n).hex() for n in (3, 1, 2)]
    assert (expensive[0]["cost_usd"], expensive[0]["tokens"], expensive[0]["llm_calls"]) == (pytest.approx(0.5), 1500, 1)


def test_latency_percentiles_are_in_seconds(seeded: Database) -> None:
    columns, rows = run(seeded, panel_sql("Latency percentiles"))
    p99 = max(row[columns.index("p99")] for row in rows)
    assert p99 == pytest.approx(4.0)


# --- the traces (Tempo) data source and the links to traces ------------------------------------

def test_traces_datasource_reads_the_api_with_its_own_traces_only_key() -> None:
    config = yaml.safe_load((PROVISIONING / "datasources/datasources.yml").read_text())
    tempo = next(s for s in config["datasources"] if s["uid"] == "observatory-traces")
    api = stack("base")["services"]["api"]
    assert tempo["type"] == "tempo" and tempo["url"] == "http://api:8080"
    assert tempo["jsonData"]["httpHeaderName1"] == "Authorization"
    assert tempo["secureJsonData"]["httpHeaderValue1"] == "Bearer ${OBSERVATORY_GRAFANA_API_KEY}"
    assert tempo["jsonData"]["streamingEnabled"]["search"] is False  # the API answers HTTP search only
    grafana = stack("base")["services"]["grafana"]
    assert "grafana_api_key" in grafana["secrets"]
    assert 'OBSERVATORY_GRAFANA_API_KEY="$(cat /run/secrets/grafana_api_key)"' in " ".join(grafana["entrypoint"])
    assert set(grafana["networks"]) >= set(api["networks"]) & {"frontend"}, "Grafana must reach the API by name"


def _links(panel: dict[str, Any]) -> dict[str, list[dict[str, Any]]]:
    return {o["matcher"]["options"]: next(p["value"] for p in o["properties"] if p["id"] == "links")
            for o in panel.get("fieldConfig", {}).get("overrides", [])}


def test_usage_dashboard_links_models_services_and_traces_to_their_traces() -> None:
    import json
    import urllib.parse

    dashboard = load_json(SQL_DASHBOARD)
    panels = {p["title"]: p for p in dashboard["panels"]}
    variables = {v["name"]: v for v in dashboard["templating"]["list"]}
    assert variables["explorer"]["type"] == "textbox" and variables["explorer"]["query"].startswith("http")
    usage = _links(panels["Usage by service and model"])
    columns = re.search(r"AS service, .* AS model,", panels["Usage by service and model"]["targets"][0]["rawSql"])
    assert columns, "the table's columns are named service and model"
    for column, traceql in (("service", '{ resource.service.name = "${__value.raw:percentencode}" }'),
                            ("model", '{ span.gen_ai.request.model = "${__value.raw:percentencode}" }')):
        grafana_link, explorer_link = usage[column]
        panes = json.loads(urllib.parse.unquote(grafana_link["url"].split("panes=", 1)[1].replace("${__value.raw:percentencode}", "VALUE")))
        query = panes["a"]["queries"][0]
        assert query["datasource"] == {"type": "tempo", "uid": "observatory-traces"} and query["queryType"] == "traceql"
        assert query["query"] == traceql.replace("${__value.raw:percentencode}", "VALUE")
        assert explorer_link["url"].startswith("${explorer}/ui/#/traces?" + column + "=${__value.raw:percentencode}")
    for title in ("Slowest traces", "Most expensive traces"):
        grafana_link, explorer_link = _links(panels[title])["trace_id"]
        assert "observatory-traces" in urllib.parse.unquote(grafana_link["url"])
        assert explorer_link["url"] == "${explorer}/ui/#/trace/${__value.raw}"
        assert "trace_id" in panels[title]["targets"][0]["rawSql"]
