"""Stored cost of real instrumentation libraries' spans, checked against hand-computed prices.

tests/fixtures/genai holds OTLP payloads recorded from OpenInference, OpenLLMetry, the
OpenTelemetry openai-v2 instrumentation, OpenLIT, Logfire and the anthropic SDK calling a
local mock of the OpenAI and Anthropic APIs (tests/fixtures/genai/record.py). Each payload
goes through the collector's cost stage and the storage writer into PostgreSQL; the stored
components and totals must equal what the providers' published prices (typed in below, list
prices as of 2025-10-01) give for the token counts the mock API answered with.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import AsyncIterator
from datetime import datetime, timedelta, timezone
from decimal import Decimal
from pathlib import Path

import psycopg
import pytest

from cli.reprice import reprice
from collector.pipeline import SpanBatch
from collector.processors.cost import CostCalculator
from collector.processors.pricing import load_price_book
from collector.receivers.otlp_json import decode_request
from storage.decode import decode
from storage.migrations import Migrator
from storage.writer import SpanWriter
from tests.conftest import Database
from tests.support import service_env

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "genai"
D = Decimal
M = D(1_000_000)
# Published list prices, USD per 1M tokens, 2025-10-01: (input, cache read, cache write 5 min, output).
# None: no separate price (the input rate applies). Reasoning tokens are billed as output.
PUBLISHED = {
    "gpt-4o-mini": (D("0.15"), D("0.075"), None, D("0.60")),
    "gpt-3.5-turbo": (D("0.50"), None, None, D("1.50")),
    "o3-mini": (D("1.10"), D("0.55"), None, D("4.40")),
    "text-embedding-3-small": (D("0.02"), None, None, D("0")),
    "gemini-2.5-pro >200k": (D("2.50"), D("0.25"), None, D("15.00")),
    "claude-sonnet-4-5": (D("3.00"), D("0.30"), D("3.75"), D("15.00")),
    "claude-sonnet-4-5 >200k": (D("6.00"), D("0.60"), D("7.50"), D("22.50")),
    "claude-3-5-haiku": (D("0.80"), D("0.08"), D("1.00"), D("4.00")),
}
# What the mock answered (tests/fixtures/genai/mock_llm.py), split as each library reports it:
# model -> (oracle prices, uncached input, cache read, cache write, output without reasoning, reasoning)
FULL = {  # cached and reasoning tokens reported
    "gpt-4o-mini": ("gpt-4o-mini", 176, 1024, 0, 80, 0),
    "text-embedding-3-small": ("text-embedding-3-small", 100, 0, 0, 0, 0),
    "o3-mini": ("o3-mini", 372, 128, 0, 200, 800),
    "gemini-2.5-pro": ("gemini-2.5-pro >200k", 250_000, 0, 0, 400, 0),  # 250k prompt: long-context rates
    "gpt-3.5-turbo": ("gpt-3.5-turbo", 176, 1024, 0, 80, 0),  # no cache price: cached pay the input rate
}
NO_REASONING = {**FULL, "o3-mini": ("o3-mini", 372, 128, 0, 1000, 0)}  # reasoning inside output, not split out
NO_CACHE = {  # opentelemetry-instrumentation-openai-v2 reports neither
    **FULL, "gpt-4o-mini": ("gpt-4o-mini", 1200, 0, 0, 80, 0), "o3-mini": ("o3-mini", 500, 0, 0, 1000, 0),
    "gpt-3.5-turbo": ("gpt-3.5-turbo", 1200, 0, 0, 80, 0),
}
ANTHROPIC = {  # Anthropic's usage: input 100 beside 2,000 written and 3,000 read, and so on
    "claude-sonnet-4-5": ("claude-sonnet-4-5", 100, 3000, 2000, 50, 0),
    "claude-sonnet-4-5-20250929": ("claude-sonnet-4-5 >200k", 150_000, 60_000, 0, 1000, 0),  # 210k in all
    "claude-3-5-haiku-20241022": ("claude-3-5-haiku", 400, 0, 1000, 20, 0),
}
# library -> (usage split, LLM calls with tokens per model, spans without usage)
LIBRARIES = {
    "openinference-openai": (FULL, {"gpt-4o-mini": 2}, 0),
    "openllmetry-openai": (FULL, {"gpt-4o-mini": 2}, 0),
    "otel-openai-v2": (NO_CACHE, {"gpt-4o-mini": 2}, 0),
    "openlit-openai": (NO_REASONING, {"gpt-4o-mini": 2}, 0),  # and gen_ai.usage.cost 0: not plausible
    "logfire-openai": (NO_REASONING, {"gpt-4o-mini": 2}, 1),  # its streamed call: a request span without usage
    # The anthropic SDK now makes spans of its own beside the instrumentation's.
    "openinference-anthropic": (ANTHROPIC, {m: 2 for m in ANTHROPIC}, 0),
    "openllmetry-anthropic": (ANTHROPIC, {m: 2 for m in ANTHROPIC}, 0),
    "logfire-anthropic": (ANTHROPIC, {}, 0),
}
COST_COLUMNS = ("cost_input_usd", "cost_cache_read_usd", "cost_cache_write_usd", "cost_output_usd",
                "cost_reasoning_usd", "cost_total_usd")


def hand(prices: str, uncached: int, read: int, write: int, output: int, reasoning: int) -> tuple[Decimal, ...]:
    inp, read_rate, write_rate, out = PUBLISHED[prices]
    parts = (uncached * inp / M, read * (read_rate if read_rate is not None else inp) / M,
             write * (write_rate if write_rate is not None else inp) / M, output * out / M, reasoning * out / M)
    return (*parts, sum(parts, D(0)))


@pytest.fixture
async def writer(fresh_database: Database) -> AsyncIterator[SpanWriter]:
    conn = await psycopg.AsyncConnection.connect(fresh_database.app_dsn, autocommit=True, options="-c TimeZone=UTC")
    yield SpanWriter(conn, retention_days=0)
    await conn.close()


async def store(writer: SpanWriter, library: str, stage: CostCalculator, shift_ns: int = 0) -> None:
    request = decode_request((FIXTURES / f"{library}.json").read_bytes())
    for resource_spans in request.resource_spans:
        for scope_spans in resource_spans.scope_spans:
            for span in scope_spans.spans:
                span.start_time_unix_nano += shift_ns
                span.end_time_unix_nano += shift_ns
    stage.process(SpanBatch(request=request, received_ns=0, protocol="test"))
    await writer.write(decode(request.SerializeToString()))


@pytest.mark.parametrize("library", list(LIBRARIES))
async def test_stored_cost_of_recorded_spans_equals_the_published_prices(writer: SpanWriter, library: str) -> None:
    split, repeats, without_usage = LIBRARIES[library]
    await store(writer, library, CostCalculator(load_price_book(None)))
    rows = await (await writer.conn.execute(
        f"""SELECT coalesce(llm_response_model, llm_request_model), llm_provider, input_tokens, output_tokens,
                   {', '.join(COST_COLUMNS)}, cost_source, cost_price_ref
            FROM spans WHERE input_tokens IS NOT NULL OR llm_request_model IS NOT NULL OR llm_response_model IS NOT NULL
            ORDER BY 1""")).fetchall()
    priced = [r for r in rows if r[2] is not None]
    assert len(rows) - len(priced) == without_usage
    assert all(r[4:] == (None,) * 8 for r in rows if r[2] is None)
    expected = sorted(
        (model, *hand(*split[model])) for model in split for _ in range(repeats.get(model, 1))
        if (model in ANTHROPIC) == (split is ANTHROPIC)
    )
    assert sorted((r[0], *r[4:10]) for r in priced) == expected
    for model, provider, input_tokens, output_tokens, *_costs, source, ref in priced:
        _prices, uncached, read, write, output, reasoning = split[model]
        assert (input_tokens, output_tokens or 0) == (uncached + read + write, output + reasoning)  # OpenTelemetry's meaning
        assert provider == ("anthropic" if split is ANTHROPIC else "openai")
        assert source == "computed" and ref.startswith("genai-prices ")


async def test_the_openlit_sdk_cost_of_zero_is_kept_beside_the_computed_one(writer: SpanWriter) -> None:
    await store(writer, "openlit-openai", CostCalculator(load_price_book(None)))
    rows = await (await writer.conn.execute(
        "SELECT DISTINCT cost_sdk_usd, cost_source FROM spans WHERE input_tokens IS NOT NULL")).fetchall()
    assert rows == [(D(0), "computed")]


async def test_rollups_sum_the_stored_components(writer: SpanWriter) -> None:
    stage = CostCalculator(load_price_book(None))
    for library in LIBRARIES:
        await store(writer, library, stage, shift_ns=hash(library) % 7 * 3_600_000_000_000)
    for tier in ("span_rollups_1m", "span_rollups_1h"):
        sums = await (await writer.conn.execute(
            f"""SELECT sum(cost_usd), sum(cost_input_usd), sum(cost_cache_read_usd), sum(cost_cache_write_usd),
                       sum(cost_output_usd), sum(cost_reasoning_usd), sum(cost_other_usd) FROM {tier}""")).fetchone()
        spans = await (await writer.conn.execute(
            f"SELECT {', '.join(f'sum({c})' for c in COST_COLUMNS)} FROM spans")).fetchone()
        assert sums[0] == spans[5] and sums[1:6] == spans[:5] and sums[6] == 0
        assert sums[0] == sum(sums[1:7])


PRICES_FROM_2026_03 = {
    "note": "a negotiated price for gpt-4o-mini from 2026-03-01",
    "models": [{"pattern": "gpt-4o-mini*", "provider": "openai", "effective_from": "2026-03-01",
                "input": 0.10, "cache_read": 0.05, "output": 0.40}],
}


def _rollup_totals(conn: psycopg.Connection) -> list[tuple]:
    return conn.execute("""SELECT tier, bucket, sum(cost_usd), sum(cost_input_usd), sum(cost_cache_read_usd),
                                  sum(cost_output_usd), sum(cost_other_usd)
                           FROM (SELECT '1m' AS tier, * FROM span_rollups_1m UNION ALL
                                 SELECT '1h', * FROM span_rollups_1h) r
                           WHERE model = 'gpt-4o-mini' GROUP BY 1, 2 ORDER BY 1, 2""").fetchall()


async def test_reprice_applies_a_price_from_its_effective_date_to_spans_and_rollups(
    writer: SpanWriter, fresh_database: Database, tmp_path: Path,
) -> None:
    # The same recorded calls on 2026-02-27 and on 2026-03-02: only the second is repriced.
    before_ns = int(datetime(2026, 2, 27, 12, tzinfo=timezone.utc).timestamp() * 1e9)
    after_ns = int(datetime(2026, 3, 2, 12, tzinfo=timezone.utc).timestamp() * 1e9)
    stage = CostCalculator(load_price_book(None))
    request = decode_request((FIXTURES / "openinference-openai.json").read_bytes())
    first = min(s.start_time_unix_nano for rs in request.resource_spans for ss in rs.scope_spans for s in ss.spans)
    await store(writer, "openinference-openai", stage, shift_ns=before_ns - first)
    await store(writer, "openllmetry-openai", stage, shift_ns=after_ns - first)
    path = tmp_path / "prices.json"
    path.write_text(json.dumps(PRICES_FROM_2026_03))
    book = load_price_book(str(path))
    window = (datetime(2026, 2, 1, tzinfo=timezone.utc), datetime(2026, 4, 1, tzinfo=timezone.utc))

    with psycopg.connect(fresh_database.admin_dsn, autocommit=True) as conn:
        stored = conn.execute("SELECT start_time, cost_total_usd, cost_source FROM spans WHERE llm_response_model = "
                              "'gpt-4o-mini' ORDER BY 1").fetchall()
        rollups_before = _rollup_totals(conn)
        dry = reprice(conn, *window, book, "plausible", batch=3, dry_run=True)
        assert (dry.examined, dry.changed) == (12, 2)
        assert conn.execute("SELECT start_time, cost_total_usd, cost_source FROM spans WHERE llm_response_model = "
                            "'gpt-4o-mini' ORDER BY 1").fetchall() == stored
        assert _rollup_totals(conn) == rollups_before

        done = reprice(conn, *window, book, "plausible", batch=3, dry_run=False)
        assert (done.examined, done.changed) == (12, 2)
        # By hand: 176 × $0.10 + 1,024 × $0.05 + 80 × $0.40 per 1M = $0.0001008 (was $0.0001512).
        new = D(176) * D("0.10") / M + D(1024) * D("0.05") / M + D(80) * D("0.40") / M
        assert new == D("0.0001008")
        rows = conn.execute("""SELECT start_time < '2026-03-01', cost_total_usd, cost_input_usd, cost_cache_read_usd,
                                      cost_output_usd, cost_source, cost_price_date
                               FROM spans WHERE llm_response_model = 'gpt-4o-mini' ORDER BY 1 DESC""").fetchall()
        old = hand("gpt-4o-mini", 176, 1024, 0, 80, 0)
        assert rows == [(True, old[5], old[0], old[1], old[3], "computed", None)] * 2 + [
            (False, new, D("0.0000176"), D("0.0000512"), D("0.0000320"), "override", datetime(2026, 3, 1).date())] * 2
        after = _rollup_totals(conn)
        for tier in ("1m", "1h"):
            march = [r for r in after if r[0] == tier and r[1] >= window[0] + timedelta(days=28)]
            assert sum(r[2] for r in march) == 2 * new
            assert sum(r[3] + r[4] + r[5] for r in march) == 2 * new and sum(r[6] for r in march) == 0
            february = [r for r in after if r[0] == tier and r[1] < window[0] + timedelta(days=28)]
            assert february == [r for r in rollups_before if r[0] == tier and r[1] < window[0] + timedelta(days=28)]

        again = reprice(conn, *window, book, "plausible", batch=5, dry_run=False)
        assert (again.examined, again.changed) == (12, 0)  # idempotent
        assert _rollup_totals(conn) == after


def test_reprice_command_dry_run_reports_the_difference(fresh_database: Database, tmp_path: Path) -> None:
    path = tmp_path / "prices.json"
    path.write_text(json.dumps(PRICES_FROM_2026_03))
    env = service_env({"DATABASE_URL": fresh_database.admin_dsn, "PRICING_FILE": str(path)})
    done = subprocess.run([sys.executable, "-m", "cli", "reprice", "--from", "2026-02-01", "--to", "2026-04-01",
                           "--dry-run", "--quiet"], env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "0 LLM spans examined, would change 0" in done.stdout
    bad = subprocess.run([sys.executable, "-m", "cli", "reprice", "--from", "2026-04-01", "--to", "2026-02-01"],
                         env=env, capture_output=True, text=True, timeout=120)
    assert bad.returncode == 2 and "--to must be after --from" in bad.stderr
    path.write_text('{"models": [{"pattern": "x"}]}')
    broken = subprocess.run([sys.executable, "-m", "cli", "reprice", "--from", "2026-02-01", "--to", "2026-04-01"],
                            env=env, capture_output=True, text=True, timeout=120)
    assert broken.returncode == 2 and "Traceback" not in broken.stderr
    assert "PRICING_FILE=" in broken.stderr and len(broken.stderr.strip().splitlines()) == 1


def test_migration_0003_keeps_an_existing_cost_as_a_legacy_total(fresh_database: Database) -> None:
    with psycopg.connect(fresh_database.admin_dsn) as conn, Migrator(conn) as migrator:
        migrator.down(steps=None, to=1)
        conn.execute("""INSERT INTO spans (trace_id, span_id, name, service_name, start_time, end_time,
                            start_time_unix_nano, end_time_unix_nano, duration_ns, llm_request_model, input_tokens,
                            cost_input_usd, cost_output_usd, cost_total_usd)
                        VALUES ('\\x01', '\\x02', 'chat', 'svc', '2026-01-01', '2026-01-01', 1, 1, 0, 'gpt-3.5-turbo',
                                1200, 512.0001, 0.0001, 512.0002),
                               ('\\x01', '\\x03', 'http', 'svc', '2026-01-01', '2026-01-01', 1, 1, 0, NULL, NULL,
                                NULL, NULL, NULL)""")
        conn.execute("""INSERT INTO span_rollups_1m (bucket, service_name, model, provider, span_count, error_count,
                            input_tokens, output_tokens, cost_usd, duration_sum_ns, duration_max_ns)
                        VALUES ('2026-01-01', 'svc', 'gpt-3.5-turbo', NULL, 1, 0, 1200, 0, 512.0002, 0, 0)""")
        conn.commit()
        migrator.up()
        assert conn.execute("""SELECT span_id, cost_source, cost_input_usd, cost_output_usd, cost_total_usd
                               FROM spans ORDER BY 1""").fetchall() == [
            (b"\x02", "legacy", None, None, D("512.0002")), (b"\x03", None, None, None, None)]
        assert conn.execute("SELECT cost_usd, cost_other_usd, cost_input_usd FROM span_rollups_1m").fetchall() == [
            (D("512.0002"), D("512.0002"), D(0))]


def test_reprice_gives_a_legacy_row_its_components_and_moves_its_rollup_share(fresh_database: Database) -> None:
    # A span the old collector priced at $512.0002 (the per-million bug), its figure in llm.cost.*.
    attributes = {"gen_ai.provider.name": "openai", "gen_ai.request.model": "gpt-3.5-turbo",
                  "gen_ai.usage.input_tokens": 1200, "gen_ai.usage.cache_read.input_tokens": 1024,
                  "gen_ai.usage.output_tokens": 80, "llm.cost.prompt": 512.0001, "llm.cost.completion": 0.0001,
                  "llm.cost.total": 512.0002}
    with psycopg.connect(fresh_database.admin_dsn) as conn, Migrator(conn) as migrator:
        migrator.down(steps=None, to=1)
        conn.execute("""INSERT INTO spans (trace_id, span_id, name, service_name, start_time, end_time,
                            start_time_unix_nano, end_time_unix_nano, duration_ns, llm_provider, llm_request_model,
                            input_tokens, output_tokens, total_tokens, cache_read_tokens, cost_input_usd,
                            cost_output_usd, cost_total_usd, attributes)
                        VALUES ('\\x01', '\\x02', 'chat', 'svc', '2026-01-01 10:00:30+00', '2026-01-01 10:00:31+00',
                                1767261630000000000, 1767261631000000000, 10, 'openai', 'gpt-3.5-turbo', 1200, 80,
                                1280, 1024, 512.0001, 0.0001, 512.0002, %s)""", (psycopg.types.json.Jsonb(attributes),))
        for tier, bucket in (("span_rollups_1m", "2026-01-01 10:00+00"), ("span_rollups_1h", "2026-01-01 10:00+00")):
            conn.execute(f"""INSERT INTO {tier} (bucket, service_name, model, provider, span_count, error_count,
                                 input_tokens, output_tokens, cost_usd, duration_sum_ns, duration_max_ns)
                             VALUES (%s, 'svc', 'gpt-3.5-turbo', 'openai', 1, 0, 1200, 80, 512.0002, 10, 10)""",
                         (bucket,))
        conn.commit()
        migrator.up()
    with psycopg.connect(fresh_database.admin_dsn, autocommit=True) as conn:
        window = (datetime(2026, 1, 1, tzinfo=timezone.utc), datetime(2026, 1, 2, tzinfo=timezone.utc))
        done = reprice(conn, *window, load_price_book(None), "plausible", batch=10, dry_run=False)
        assert (done.examined, done.changed, done.before, done.after) == (1, 1, D("512.0002"), D("0.00072"))
        # By hand: 176 × $0.50 + 1,024 × $0.50 (no cache price) + 80 × $1.50 per 1M = $0.00072.
        assert conn.execute("""SELECT cost_input_usd, cost_cache_read_usd, cost_output_usd, cost_total_usd,
                                      cost_source, cost_sdk_usd FROM spans""").fetchall() == [
            (D("0.000088"), D("0.000512"), D("0.00012"), D("0.00072"), "computed", None)]
        for tier in ("span_rollups_1m", "span_rollups_1h"):
            assert conn.execute(f"""SELECT cost_usd, cost_input_usd, cost_cache_read_usd, cost_output_usd,
                                           cost_other_usd, span_count FROM {tier}""").fetchall() == [
                (D("0.00072"), D("0.000088"), D("0.000512"), D("0.00012"), D(0), 1)]


@pytest.mark.timescaledb
async def test_on_timescaledb_aggregates_sum_components_and_follow_a_reprice(tmp_path: Path) -> None:
    from tests.conftest import create_database, drop_database
    from tests.storage.test_timescaledb import TIMESCALE_DSN, _skip_reason

    reason = _skip_reason()
    if reason:
        pytest.skip(reason)
    tsdb = create_database("obs_tsdb_cost", TIMESCALE_DSN)
    try:
        conn = await psycopg.AsyncConnection.connect(tsdb.app_dsn, autocommit=True, options="-c TimeZone=UTC")
        writer = SpanWriter(conn, retention_days=0)
        after_ns = int(datetime(2026, 3, 2, 12, tzinfo=timezone.utc).timestamp() * 1e9)
        request = decode_request((FIXTURES / "openllmetry-openai.json").read_bytes())
        first = min(s.start_time_unix_nano for rs in request.resource_spans for ss in rs.scope_spans for s in ss.spans)
        await store(writer, "openllmetry-openai", CostCalculator(load_price_book(None)), shift_ns=after_ns - first)
        await conn.close()
        path = tmp_path / "prices.json"
        path.write_text(json.dumps(PRICES_FROM_2026_03))
        window = (datetime(2026, 3, 1, tzinfo=timezone.utc), datetime(2026, 3, 3, tzinfo=timezone.utc))
        old = hand("gpt-4o-mini", 176, 1024, 0, 80, 0)
        with psycopg.connect(tsdb.admin_dsn, autocommit=True) as admin:
            # Materialised, so the reprice must change what the aggregates hold, not only the live part.
            for view in ("span_rollups_1m", "span_rollups_1h"):
                admin.execute("CALL refresh_continuous_aggregate(%s, %s, %s)", (view, *window))
            assert [r[2:6] for r in _rollup_totals(admin)] == [(2 * old[5], 2 * old[0], 2 * old[1], 2 * old[3])] * 2
            done = reprice(admin, *window, load_price_book(str(path)), "plausible", batch=4, dry_run=False)
            assert done.changed == 2
            new = D("0.0001008")  # 176 × $0.10 + 1,024 × $0.05 + 80 × $0.40 per 1M
            rows = admin.execute("""SELECT sum(cost_usd), sum(cost_input_usd), sum(cost_cache_read_usd),
                                           sum(cost_output_usd), sum(cost_other_usd)
                                    FROM span_rollups_1h WHERE model = 'gpt-4o-mini'""").fetchone()
            assert rows == (2 * new, D("0.0000352"), D("0.0001024"), D("0.0000640"), D(0))
            materialized = admin.execute("""SELECT materialization_hypertable_schema || '.' || materialization_hypertable_name
                                            FROM timescaledb_information.continuous_aggregates
                                            WHERE view_name = 'span_rollups_1m'""").fetchone()[0]
            assert admin.execute(f"SELECT count(*) FROM {materialized}").fetchone()[0] > 0
            again = reprice(admin, *window, load_price_book(str(path)), "plausible", batch=4, dry_run=False)
            assert again.changed == 0
    finally:
        drop_database(tsdb.name, TIMESCALE_DSN)
