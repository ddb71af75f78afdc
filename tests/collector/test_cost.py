"""LLM cost stage against an independent oracle: list prices typed in here by hand.

PUBLISHED holds the providers' published list prices (USD per 1M tokens) as of 2025-10-01,
copied from their pricing pages, never read from genai-prices or the stage's tables. Every
expected figure is computed in this file from those literals.
"""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from prometheus_client import REGISTRY

from collector.processors.cost import CostCalculator
from collector.processors.pricing import load_price_book
from common import genai
from common.settings import SettingsError
from tests.collector.spans import batch, request, span_attributes

D = Decimal
M = D(1_000_000)
# (input, cache read, cache write (5 min), output) per 1M tokens; None: no separate price.
# Long context: prices above 200,000 input tokens (cache reads and writes included).
PUBLISHED = {
    "gpt-4o-mini": (D("0.15"), D("0.075"), None, D("0.60")),
    "gpt-4o": (D("2.50"), D("1.25"), None, D("10.00")),
    "gpt-3.5-turbo": (D("0.50"), None, None, D("1.50")),
    "o3-mini": (D("1.10"), D("0.55"), None, D("4.40")),
    "text-embedding-3-small": (D("0.02"), None, None, D("0")),
    "claude-sonnet-4-5": (D("3.00"), D("0.30"), D("3.75"), D("15.00")),
    "claude-sonnet-4-5 >200k": (D("6.00"), D("0.60"), D("7.50"), D("22.50")),
    "claude-3-5-haiku": (D("0.80"), D("0.08"), D("1.00"), D("4.00")),
    "gemini-2.5-pro": (D("1.25"), D("0.125"), None, D("10.00")),
    "gemini-2.5-pro >200k": (D("2.50"), D("0.25"), None, D("15.00")),
}

BOOK = load_price_book(None)
COST = CostCalculator(BOOK)


def hand(model: str, uncached: int, cache_read: int, cache_write: int, output: int, reasoning: int) -> dict[str, Decimal]:
    """The oracle: each kind of token at its published rate (input / output where there is none)."""
    inp, read, write, out = PUBLISHED[model]
    parts = {
        "input": uncached * inp / M,
        "cache_read": cache_read * (read if read is not None else inp) / M,
        "cache_write": cache_write * (write if write is not None else inp) / M,
        "output": output * out / M,
        "reasoning": reasoning * out / M,  # OpenAI bills reasoning tokens as output tokens
    }
    parts["total"] = sum(parts.values(), D(0))
    return parts


def priced(attrs: dict, scope: str = "test") -> dict:
    req = request({"attributes": attrs})
    req.resource_spans[0].scope_spans[0].scope.name = scope
    COST.process(batch(req))
    return span_attributes(req)


def costs(attrs: dict) -> dict[str, Decimal]:
    """What the stage wrote, as the writer reads it (common/genai.py)."""
    fields = genai.extract(priced(attrs))
    return {"input": fields.cost_input_usd, "cache_read": fields.cost_cache_read_usd,
            "cache_write": fields.cost_cache_write_usd, "output": fields.cost_output_usd,
            "reasoning": fields.cost_reasoning_usd, "total": fields.cost_total_usd}


def same(got: dict[str, Decimal], want: dict[str, Decimal]) -> None:
    # Stored as numeric(20, 10): agree to 1e-12 USD (the stage writes doubles).
    assert set(got) == set(want)
    for key in want:
        assert got[key] is not None and abs(got[key] - want[key]) < D("1e-12"), (key, got[key], want[key])


def test_cached_tokens_of_a_model_without_a_cache_price_pay_the_input_rate_per_token() -> None:
    # The case: stored at $512.0002 before; 1,200 input (1,024 cached) + 80 output.
    attrs = {"gen_ai.provider.name": "openai", "gen_ai.request.model": "gpt-3.5-turbo",
             "gen_ai.usage.input_tokens": 1200, "gen_ai.usage.cache_read.input_tokens": 1024,
             "gen_ai.usage.output_tokens": 80}
    got = costs(attrs)
    same(got, hand("gpt-3.5-turbo", 176, 1024, 0, 80, 0))
    assert got["total"] == D("0.00072")


def test_openai_cached_tokens_are_inside_the_input_and_priced_at_the_cache_rate() -> None:
    attrs = {"gen_ai.provider.name": "openai", "gen_ai.request.model": "gpt-4o", "gen_ai.usage.input_tokens": 10_000,
             "gen_ai.usage.cache_read.input_tokens": 8_000, "gen_ai.usage.output_tokens": 100}
    same(costs(attrs), hand("gpt-4o", 2_000, 8_000, 0, 100, 0))


def test_anthropic_native_counts_beside_the_input_are_summed_not_subtracted() -> None:
    # Anthropic's API: input_tokens 2,000 *beside* 8,000 cache reads and 1,000 cache writes.
    attrs = {"gen_ai.provider.name": "anthropic", "gen_ai.response.model": "claude-sonnet-4-5-20250929",
             "gen_ai.usage.input_tokens": 2_000, "gen_ai.usage.cache_read.input_tokens": 8_000,
             "gen_ai.usage.cache_creation.input_tokens": 1_000, "gen_ai.usage.output_tokens": 1_000}
    out = priced(attrs)
    same(costs(attrs), hand("claude-sonnet-4-5", 2_000, 8_000, 1_000, 1_000, 0))
    assert genai.extract(out).input_tokens == 11_000  # stored with OpenTelemetry's meaning


def test_a_scope_named_in_pricing_file_reads_cache_counts_beside_the_input(tmp_path: Path) -> None:
    path = tmp_path / "prices.json"
    path.write_text(json.dumps({"models": [], "cache_beside_input_scopes": ["acme.anthropic"]}))
    stage = CostCalculator(load_price_book(str(path)))
    attrs = {"gen_ai.provider.name": "anthropic", "gen_ai.request.model": "claude-3-5-haiku-20241022",
             "gen_ai.usage.input_tokens": 3_000, "gen_ai.usage.cache_read.input_tokens": 1_000,
             "gen_ai.usage.output_tokens": 10}
    req = request({"attributes": attrs})
    req.resource_spans[0].scope_spans[0].scope.name = "acme.anthropic"
    stage.process(batch(req))
    fields = genai.extract(span_attributes(req))
    assert fields.input_tokens == 4_000
    assert abs(fields.cost_total_usd - hand("claude-3-5-haiku", 3_000, 1_000, 0, 10, 0)["total"]) < D("1e-12")


def test_long_context_rates_apply_to_every_token_above_200k_input_cache_included() -> None:
    attrs = {"gen_ai.provider.name": "anthropic", "gen_ai.request.model": "claude-sonnet-4-5",
             "gen_ai.usage.input_tokens": 210_000, "gen_ai.usage.cache_read.input_tokens": 60_000,
             "gen_ai.usage.output_tokens": 1_000}
    same(costs(attrs), hand("claude-sonnet-4-5 >200k", 150_000, 60_000, 0, 1_000, 0))
    at_threshold = dict(attrs, **{"gen_ai.usage.input_tokens": 200_000})
    same(costs(at_threshold), hand("claude-sonnet-4-5", 140_000, 60_000, 0, 1_000, 0))


def test_reasoning_tokens_are_inside_the_output_and_counted_once() -> None:
    attrs = {"gen_ai.provider.name": "openai", "gen_ai.request.model": "o3-mini", "gen_ai.usage.input_tokens": 500,
             "gen_ai.usage.output_tokens": 1_000, "gen_ai.usage.reasoning.output_tokens": 800}
    same(costs(attrs), hand("o3-mini", 500, 0, 0, 200, 800))


def test_openinference_embedding_spans_get_their_model_and_a_cost() -> None:
    attrs = {"llm.system": "openai", "embedding.model_name": "text-embedding-3-small", "llm.token_count.prompt": 100,
             "llm.token_count.total": 100, "openinference.span.kind": "EMBEDDING"}
    out = priced(attrs)
    fields = genai.extract(out)
    assert (fields.provider, fields.response_model) == ("openai", "text-embedding-3-small")
    same(costs(attrs), hand("text-embedding-3-small", 100, 0, 0, 0, 0))


def test_the_provider_is_inferred_from_the_model_when_the_span_names_none() -> None:
    fields = genai.extract(priced({"gen_ai.request.model": "gpt-4o-mini", "gen_ai.usage.input_tokens": 10}))
    assert (fields.provider, fields.provider_inferred) == ("openai", True)
    assert genai.extract({"gen_ai.request.model": "claude-3-5-haiku-latest"}).provider == "anthropic"
    assert genai.extract({"gen_ai.request.model": "gemini-2.5-pro"}).provider == "gcp.gemini"
    assert genai.extract({"gen_ai.request.model": "my-private-llm"}).provider is None


def test_openlit_zero_cost_with_tokens_is_not_plausible_and_the_computed_cost_wins() -> None:
    attrs = {"gen_ai.provider.name": "openai", "gen_ai.request.model": "gpt-4o-mini", "gen_ai.usage.input_tokens": 1200,
             "gen_ai.usage.cache_read.input_tokens": 1024, "gen_ai.usage.output_tokens": 80, "gen_ai.usage.cost": 0}
    fields = genai.extract(priced(attrs))
    assert fields.cost_source == "computed" and fields.cost_sdk_usd == 0
    same(costs(attrs), hand("gpt-4o-mini", 176, 1024, 0, 80, 0))


def test_a_plausible_sdk_cost_wins_and_the_computed_one_is_kept_beside_it() -> None:
    attrs = {"gen_ai.provider.name": "openai", "gen_ai.request.model": "gpt-4o-mini", "gen_ai.usage.input_tokens": 1000,
             "gen_ai.usage.output_tokens": 100, "gen_ai.usage.cost.amount": 0.5, "gen_ai.usage.cost.currency": "USD"}
    fields = genai.extract(priced(attrs))
    assert (fields.cost_source, fields.cost_total_usd, fields.cost_sdk_usd) == ("sdk", D("0.5"), D("0.5"))
    assert abs(fields.cost_input_usd - 1000 * D("0.15") / M) < D("1e-12")  # computed, kept


def test_sdk_cost_policies() -> None:
    attrs = {"gen_ai.provider.name": "openai", "gen_ai.request.model": "gpt-4o-mini", "gen_ai.usage.input_tokens": 1000,
             "gen_ai.usage.output_tokens": 100, "gen_ai.usage.cost": 0}
    for policy, source in (("always", "sdk"), ("never", "computed"), ("plausible", "computed")):
        req = request({"attributes": attrs})
        CostCalculator(BOOK, policy).process(batch(req))
        assert genai.extract(span_attributes(req)).cost_source == source, policy
    with pytest.raises(ValueError, match="SDK_COST_POLICY"):
        CostCalculator(BOOK, "sometimes")


def test_a_cost_in_another_currency_is_not_taken_as_usd() -> None:
    attrs = {"gen_ai.request.model": "gpt-4o-mini", "gen_ai.usage.input_tokens": 1000, "gen_ai.usage.output_tokens": 0,
             "gen_ai.usage.cost.amount": 7.0, "gen_ai.usage.cost.currency": "EUR"}
    fields = genai.extract(priced(attrs))
    assert fields.cost_sdk_usd is None and fields.cost_source == "computed"


def _unpriced(model: str) -> float:
    return REGISTRY.get_sample_value("observatory_collector_cost_unpriced_spans_total", {"model": model}) or 0.0


def test_unknown_model_leaves_cost_empty_is_counted_by_name_and_logged_once(capsys: pytest.CaptureFixture[str]) -> None:
    before = _unpriced("acme-private-7b")
    for _ in range(3):
        out = priced({"gen_ai.request.model": "acme-private-7b", "gen_ai.usage.input_tokens": 10})
        assert genai.extract(out).cost_total_usd is None
    assert _unpriced("acme-private-7b") == before + 3
    assert capsys.readouterr().out.count("no price for model") == 1


def test_spans_that_are_not_llm_calls_are_left_alone() -> None:
    attrs = {"http.route": "/checkout"}
    assert priced(attrs) == attrs


def test_pricing_file_prices_private_models_and_overrides_from_its_effective_date(tmp_path: Path) -> None:
    path = tmp_path / "prices.json"
    path.write_text(json.dumps({"models": [
        {"pattern": "acme-llm-*", "input": 1, "output": 2},
        {"pattern": "gpt-4o-mini*", "provider": "openai", "effective_from": "2030-01-01", "input": 0.10, "output": 0.40},
    ]}))
    stage = CostCalculator(load_price_book(str(path)))

    def total(attrs: dict, start_ns: int) -> tuple[Decimal, str, str | None]:
        req = request({"attributes": attrs, "start": start_ns, "end": start_ns + 1})
        stage.process(batch(req))
        fields = genai.extract(span_attributes(req))
        return fields.cost_total_usd, fields.cost_source, fields.cost_price_date

    now, later = 1_780_000_000 * 10**9, 1_900_000_000 * 10**9  # 2026-05, 2030-03
    assert total({"gen_ai.request.model": "acme-llm-70b", "gen_ai.usage.input_tokens": 1_000_000,
                  "gen_ai.usage.output_tokens": 1_000_000}, now) == (D(3), "override", None)
    mini = {"gen_ai.provider.name": "openai", "gen_ai.request.model": "gpt-4o-mini", "gen_ai.usage.input_tokens": 1_000_000,
            "gen_ai.usage.output_tokens": 0}
    assert total(mini, now)[:2] == (D("0.15"), "computed")  # before the entry's date: the library's price
    assert total(mini, later) == (D("0.1"), "override", "2030-01-01")


@pytest.mark.parametrize(("document", "message"), [
    ("[]", "'models' list"),
    ('{"models": [{"input": 1, "output": 1}]}', "pattern"),
    ('{"models": [{"pattern": "x", "output": 1}]}', "missing 'input'"),
    ('{"models": [{"pattern": "x", "input": -1, "output": 1}]}', "non-negative"),
    ('{"models": [{"pattern": "x", "input": 1, "output": 1, "effective_from": "soon"}]}', "YYYY-MM-DD"),
    ('{"models": [{"pattern": "x", "input": 1, "output": 1, "cahce_read": 1}]}', "unknown field"),
    ('{"models": [{"pattern": "x", "input": 1, "output": 1, "tiers": [{"input": 2}]}]}', "above_input_tokens"),
    ('{"models": [], "currency": "EUR"}', "USD per 1M"),
    ("{not json", "not JSON"),
])
def test_bad_pricing_files_are_one_line_settings_errors(tmp_path: Path, document: str, message: str) -> None:
    path = tmp_path / "prices.json"
    path.write_text(document)
    with pytest.raises(SettingsError, match=message) as caught:
        load_price_book(str(path))
    assert "PRICING_FILE=" in str(caught.value) and "\n" not in str(caught.value)


def test_unreadable_pricing_file_names_the_variable() -> None:
    with pytest.raises(SettingsError, match="PRICING_FILE='/nonexistent.json' cannot be read"):
        load_price_book("/nonexistent.json")


# Property: for any token counts, the stage's stored components equal the oracle's.
counts = st.integers(min_value=0, max_value=2_000_000)


@settings(max_examples=200, deadline=None)
@given(model=st.sampled_from(["gpt-4o-mini", "gpt-3.5-turbo", "o3-mini", "claude-sonnet-4-5", "claude-3-5-haiku",
                              "gemini-2.5-pro"]),
       uncached=counts, cache_read=counts, cache_write=counts, output=counts, reasoning=counts)
def test_any_counts_cost_what_the_published_prices_say(model: str, uncached: int, cache_read: int, cache_write: int,
                                                       output: int, reasoning: int) -> None:
    if model.startswith(("gpt", "o3", "gemini")):
        cache_write = 0  # no cache-write usage on these APIs
    if not model.startswith("o3"):
        reasoning = 0
    input_tokens = uncached + cache_read + cache_write
    request_model = {"claude-3-5-haiku": "claude-3-5-haiku-20241022"}.get(model, model)
    attrs = {"gen_ai.request.model": request_model, "gen_ai.usage.input_tokens": input_tokens,
             "gen_ai.usage.cache_read.input_tokens": cache_read, "gen_ai.usage.cache_write.input_tokens": cache_write,
             "gen_ai.usage.output_tokens": output + reasoning, "gen_ai.usage.reasoning.output_tokens": reasoning}
    rates = model + " >200k" if input_tokens > 200_000 and model + " >200k" in PUBLISHED else model
    want = hand(rates, uncached, cache_read, cache_write, output, reasoning)
    got = costs(attrs)
    for key in want:  # doubles on the wire: agree to 15 significant digits
        assert abs(got[key] - want[key]) <= max(abs(want[key]) * D("1e-15"), D("1e-15")), (key, got[key], want[key])
