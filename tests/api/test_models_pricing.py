"""/models over spans the real cost stage and writer stored: unpriced models listed, one
provider per model, cost parts that add up."""

from __future__ import annotations

from datetime import datetime, timezone

import psycopg
from aiohttp.test_utils import TestClient

from collector.pipeline import SpanBatch
from collector.processors.cost import CostCalculator
from collector.processors.pricing import load_price_book
from common.otlp import key_value as kv
from storage.decode import decode
from storage.writer import SpanWriter
from tests.api.conftest import ClientFactory, get_json
from tests.conftest import Database
from tests.storage.support import request, trace_ids

START = datetime(2026, 6, 1, 12, tzinfo=timezone.utc)
START_NS = int(START.timestamp()) * 1_000_000_000
WINDOW = {"start": "2026-06-01T11:00:00Z", "end": "2026-06-01T14:00:00Z"}


async def _store(database: Database) -> None:
    stage = CostCalculator(load_price_book(None))
    req = request(trace_ids(3), spans_per_trace=1, start_ns=START_NS, llm=False)
    spans = req.resource_spans[0].scope_spans[0].spans
    # The README's example span names no provider: inferred, so gpt-4o-mini is one model.
    spans[0].attributes.extend([kv("gen_ai.request.model", "gpt-4o-mini"), kv("gen_ai.usage.input_tokens", 1000),
                                kv("gen_ai.usage.output_tokens", 100)])
    spans[1].attributes.extend([kv("gen_ai.provider.name", "openai"), kv("gen_ai.request.model", "gpt-4o-mini"),
                                kv("gen_ai.usage.input_tokens", 1000), kv("gen_ai.usage.output_tokens", 100)])
    spans[2].attributes.extend([kv("gen_ai.request.model", "acme-private-7b"), kv("gen_ai.usage.input_tokens", 5000),
                                kv("gen_ai.usage.output_tokens", 700)])
    stage.process(SpanBatch(request=req, received_ns=0, protocol="test"))
    conn = await psycopg.AsyncConnection.connect(database.app_dsn, autocommit=True, options="-c TimeZone=UTC")
    try:
        await SpanWriter(conn).write(decode(req.SerializeToString()))
    finally:
        await conn.close()


async def test_models_lists_unpriced_models_and_one_provider_per_model(
    make_client: ClientFactory, fresh_database: Database,
) -> None:
    await _store(fresh_database)
    client: TestClient = await make_client(fresh_database)
    body = await get_json(client, "/api/v1/models", **WINDOW)
    models = {(m["model"], m["provider"]): m for m in body["models"]}
    assert set(models) == {("gpt-4o-mini", "openai"), ("acme-private-7b", None)}
    # 2 × (1,000 × $0.15 + 100 × $0.60) per 1M, gpt-4o-mini's list price
    assert models[("gpt-4o-mini", "openai")]["cost_usd"] == 0.00042
    assert models[("gpt-4o-mini", "openai")]["cost"] == {"input": 0.0003, "cache_read": 0.0, "cache_write": 0.0,
                                                         "output": 0.00012, "reasoning": 0.0, "other": 0.0}
    assert [m["priced"] for m in (models[("gpt-4o-mini", "openai")], models[("acme-private-7b", None)])] == [True, False]
    assert body["unpriced"] == [{"model": "acme-private-7b", "provider": None, "request_count": 1,
                                 "input_tokens": 5000, "output_tokens": 700}]
