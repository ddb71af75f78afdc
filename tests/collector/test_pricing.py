"""The price book against genai-prices itself: compiling the library's prices (dates, tiers,
off-peak hours) into integer rates must not change a single figure.

This checks the translation, not the prices: tests/collector/test_cost.py and
tests/storage/test_cost_stored.py check those against published prices typed in by hand.
"""

from __future__ import annotations

from datetime import datetime, timezone
from decimal import Decimal

import pytest
from genai_prices import Usage
from genai_prices.data_snapshot import get_snapshot

from collector.processors.pricing import PriceBook, Schedule, _library_schedule, price_call

TOKEN_KEYS = {"input_mtok", "output_mtok", "cache_read_mtok", "cache_write_mtok", "output_reasoning_mtok"}
IGNORED = {"web_searches_kcount", "storage_searches_kcount", "cache_write_1h_mtok"}  # no such usage below
MOMENTS = [datetime(2024, 6, 1, 12, tzinfo=timezone.utc), datetime(2026, 6, 1, 3, tzinfo=timezone.utc),
           datetime(2026, 6, 1, 20, tzinfo=timezone.utc)]


def _comparable(model) -> bool:  # noqa: ANN001
    prices = [model.prices] if not isinstance(model.prices, list) else [c.prices for c in model.prices]
    keys = {k for p in prices for k, v in p.__dict__.items() if v is not None}
    return bool(keys & {"input_mtok", "output_mtok"}) and keys <= TOKEN_KEYS | IGNORED and not model.price_variants


MODELS = [(provider, model) for provider in get_snapshot().providers for model in provider.models if _comparable(model)]


def schedule(provider, model) -> Schedule:  # noqa: ANN001 - as PriceBook compiles a library model
    periods, time_of_day = _library_schedule(provider, model)
    return Schedule(tuple(p.start_ns for p in periods), tuple(periods), time_of_day, periods[0].ref if periods else "")


def test_most_of_the_library_is_compared() -> None:
    assert len(MODELS) > 1500


@pytest.mark.parametrize("usage", [(5_000, 1_000, 500, 300, 100), (250_000, 60_000, 0, 1_000, 0), (10, 0, 0, 0, 0)])
def test_every_model_costs_what_the_library_says(usage: tuple[int, int, int, int, int]) -> None:
    input_tokens, cache_read, cache_write, output, reasoning = usage
    mismatches = []
    for provider, model in MODELS:
        compiled = schedule(provider, model)
        for moment in MOMENTS:
            expected = model.calc_price(Usage(input_tokens=input_tokens, cache_read_tokens=cache_read,
                                              cache_write_tokens=cache_write, output_tokens=output,
                                              output_reasoning_tokens=reasoning),
                                        provider, genai_request_timestamp=moment).total_price
            period = compiled.at(int(moment.timestamp()) * 10**9)
            got = price_call(period, input_tokens, output, cache_read, cache_write, reasoning).usd()[5]
            if got != expected:
                mismatches.append((provider.id, model.id, moment.isoformat(), got, expected))
    assert mismatches == []


def test_the_price_book_finds_models_by_the_names_spans_carry() -> None:
    book = PriceBook()
    for provider, model, at in (("openai", "gpt-4o-mini-2024-07-18", 0), ("anthropic", "claude-sonnet-4-5-20250929", 0),
                                ("gcp.gemini", "models/gemini-2.5-pro", 0), ("openai", "gemini-2.5-pro", 0),
                                ("aws.bedrock", "us.anthropic.claude-3-5-haiku-20241022-v1:0", 0), (None, "deepseek-chat", 0),
                                ("mistral_ai", "mistral-large-latest", 0)):
        assert book.period(provider, model, None, at) is not None, (provider, model)
    assert book.period("openai", "acme-private-7b", None, 0) is None


def test_a_model_priced_only_per_audio_hour_is_unpriced_not_free() -> None:
    audio_only = [(p.id, m.id) for p in get_snapshot().providers for m in p.models
                  if not isinstance(m.prices, list) and m.prices.input_mtok is None and m.prices.output_mtok is None]
    assert audio_only, "the library has such models"
    provider_id, model_id = audio_only[0]
    assert PriceBook().schedule(provider_id, model_id) is None


def test_cost_amounts_are_exact_decimals() -> None:
    period = PriceBook().period("openai", "gpt-4o-mini", None, 0)
    assert price_call(period, 1200, 80, 1024, 0, 0).usd()[5] == Decimal("0.0001512")


def test_the_documented_example_pricing_file_loads() -> None:
    from pathlib import Path

    from collector.processors.pricing import load_price_book

    example = Path(__file__).resolve().parents[2] / "docs" / "pricing.example.json"
    book = load_price_book(str(example))
    period = book.period("anthropic", "claude-sonnet-4-5-20250929", None, int(datetime(2026, 4, 1).timestamp()) * 10**9)
    assert (period.source, period.effective_from) == ("override", "2026-03-01")
    # 250k input (above the tier): 250,000 × $5.40 per 1M
    assert price_call(period, 250_000, 0, 0, 0, 0).usd()[5] == Decimal("1.35")
