"""LLM cost: the shipped table, both cached-token conventions, SDK costs kept, unknown models counted."""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st
from prometheus_client import REGISTRY

from collector.processors.cost import Cost, CostCalculator, Rates, compute
from collector.processors.pricing import ModelPrice, load_pricing, normalise_model, parse_pricing
from common import genai
from tests.collector.spans import batch, request, span_attributes

TABLE = load_pricing(None)
COST = CostCalculator(TABLE)


def _priced(attrs: dict) -> dict:
    req = request({"attributes": attrs})
    COST.process(batch(req))
    return span_attributes(req)


def _costs(attrs: dict) -> tuple[float, float, float]:
    out = _priced(attrs)
    return out["llm.cost.prompt"], out["llm.cost.completion"], out["llm.cost.total"]


def test_plain_openai_call_is_priced_per_million_tokens() -> None:
    # gpt-4o: $2.50 in / $10.00 out per 1M tokens.
    attrs = {"gen_ai.provider.name": "openai", "gen_ai.response.model": "gpt-4o-2024-08-06",
             "gen_ai.usage.input_tokens": 1000, "gen_ai.usage.output_tokens": 500}
    assert _costs(attrs) == (0.0025, 0.005, 0.0075)


def test_openai_convention_cached_tokens_are_inside_the_input_tokens() -> None:
    # 10,000 input of which 8,000 cache reads: 2,000 × $2.50 + 8,000 × $1.25 per 1M.
    attrs = {"gen_ai.provider.name": "openai", "gen_ai.request.model": "gpt-4o", "gen_ai.usage.input_tokens": 10_000,
             "gen_ai.usage.cache_read.input_tokens": 8_000, "gen_ai.usage.output_tokens": 100}
    assert _costs(attrs) == (0.015, 0.001, 0.016)


def test_anthropic_convention_cached_tokens_are_beside_the_input_tokens() -> None:
    # claude-sonnet-4-5: $3 in, $0.30 cache read, $3.75 cache write, $15 out per 1M.
    # 2,000 uncached + 8,000 read + 1,000 written, as Anthropic's API reports them.
    attrs = {"gen_ai.provider.name": "anthropic", "gen_ai.response.model": "claude-sonnet-4-5-20250929",
             "gen_ai.usage.input_tokens": 2_000, "gen_ai.usage.cache_read.input_tokens": 8_000,
             "gen_ai.usage.cache_creation.input_tokens": 1_000, "gen_ai.usage.output_tokens": 1_000}
    prompt, completion, total = _costs(attrs)
    assert prompt == pytest.approx(0.006 + 0.0024 + 0.00375)
    assert (completion, total) == (0.015, pytest.approx(0.02715))


def test_same_tokens_cost_the_same_whichever_convention_the_span_used() -> None:
    entry = TABLE.price("claude-sonnet-4-5")
    assert entry is not None
    separate = genai.LlmFields(input_tokens=2_000, cache_read_tokens=8_000, cache_write_tokens=1_000, output_tokens=10)
    included = genai.LlmFields(input_tokens=11_000, cache_read_tokens=8_000, cache_write_tokens=1_000, output_tokens=10)
    assert compute(separate, entry, "separate") == compute(included, entry, "included")


def test_cache_counts_larger_than_the_input_can_only_be_separate() -> None:
    # An "included" provider that reported the cache beside the input must not go negative.
    entry = TABLE.price("gpt-4o")
    assert entry is not None
    fields = genai.LlmFields(input_tokens=100, cache_read_tokens=1_000, output_tokens=0)
    assert compute(fields, entry, "included").input == 100 * entry.input + 1_000 * entry.cache_read


def test_claude_on_bedrock_and_vertex_uses_anthropic_convention_and_host_prefixes_are_ignored() -> None:
    assert normalise_model("us.anthropic.claude-3-5-sonnet-20241022-v2:0") == "claude-3-5-sonnet-20241022-v2:0"
    for provider in ("aws.bedrock", "gcp.vertex_ai"):
        entry = TABLE.price("us.anthropic.claude-3-5-sonnet-20241022-v2:0")
        assert entry is not None and TABLE.convention(provider, entry) == "separate"
    gemini = TABLE.price("models/gemini-2.5-flash")
    assert gemini is not None and TABLE.convention("gcp.vertex_ai", gemini) == "included"


def test_reasoning_tokens_are_priced_as_output_once() -> None:
    attrs = {"gen_ai.request.model": "o3", "gen_ai.usage.input_tokens": 0, "gen_ai.usage.output_tokens": 1_000,
             "gen_ai.usage.reasoning.output_tokens": 800}
    assert _costs(attrs) == (0.0, 0.008, 0.008)


def test_openinference_names_are_read_when_genai_ones_are_absent() -> None:
    attrs = {"llm.provider": "deepseek", "llm.model_name": "deepseek-chat", "llm.token_count.prompt": 1_000_000,
             "llm.token_count.prompt_details.cache_read": 500_000, "llm.token_count.completion": 1_000_000}
    assert _costs(attrs) == (pytest.approx(0.14 + 0.014), 0.42, pytest.approx(0.574))


@pytest.mark.parametrize(
    ("model", "pattern"),
    [("gpt-4o-mini-2024-07-18", "gpt-4o-mini*"), ("gpt-4.1-nano", "gpt-4.1-nano*"), ("o3-pro-2025-06-10", "o3-pro*"),
     ("claude-opus-4-1-20250805", "claude-opus-4*"), ("claude-3-5-haiku-latest", "claude-3-5-haiku*"),
     ("gemini-2.5-flash-lite", "gemini-2.5-flash-lite*"), ("mistral-large-2411", "mistral-large*"),
     ("meta.llama3-3-70b-instruct-v1:0", "llama3-3-70b*"), ("command-r-plus-08-2024", "command-r-plus*"),
     ("command-r7b-12-2024", "command-r7b*"), ("deepseek-reasoner", "deepseek-reasoner*")],
)
def test_the_most_specific_pattern_wins(model: str, pattern: str) -> None:
    entry = TABLE.price(model)
    assert entry is not None and entry.pattern == pattern


def test_the_table_covers_every_provider_the_issue_names() -> None:
    assert {m.provider for m in TABLE.models} >= {"openai", "anthropic", "google", "mistral", "meta", "cohere", "deepseek"}


def _outcome(name: str) -> float:
    return REGISTRY.get_sample_value("observatory_collector_cost_spans_total", {"outcome": name}) or 0.0


def test_a_cost_the_sdk_sent_is_kept_not_overwritten() -> None:
    before = _outcome("sdk_cost")
    for sent in ({"gen_ai.usage.cost": 0.5}, {"llm.cost.total": 0.5}, {"llm.cost.prompt": 0.2}):
        out = _priced({"gen_ai.request.model": "gpt-4o", "gen_ai.usage.input_tokens": 10, **sent})
        assert {k: v for k, v in out.items() if "cost" in k} == sent
    assert _outcome("sdk_cost") - before == 3


def test_unknown_model_leaves_cost_empty_and_is_counted() -> None:
    before = _outcome("unknown_model")
    out = _priced({"gen_ai.request.model": "my-private-model", "gen_ai.usage.input_tokens": 10})
    assert not any("cost" in k for k in out)
    assert _outcome("unknown_model") - before == 1


def test_spans_that_are_not_llm_calls_are_left_alone() -> None:
    assert _priced({"http.route": "/chat"}) == {"http.route": "/chat"}
    assert not any("cost" in k for k in _priced({"gen_ai.request.model": "gpt-4o"}))  # no tokens: nothing to price


def test_the_writer_stores_what_the_cost_stage_writes() -> None:
    out = _priced({"gen_ai.request.model": "gpt-4o-mini", "gen_ai.usage.input_tokens": 1200, "gen_ai.usage.output_tokens": 345})
    fields = genai.extract(out)
    assert (fields.cost_input_usd, fields.cost_output_usd, fields.cost_total_usd) == (Decimal("0.00018"), Decimal("0.000207"), Decimal("0.000387"))


def test_pricing_file_replaces_the_table(tmp_path: Path) -> None:
    path = tmp_path / "prices.json"
    path.write_text(json.dumps({"models": [{"pattern": "gpt-4o*", "input": 1, "output": 2}]}))
    table = load_pricing(str(path))
    assert len(table.models) == 1 and table.price("gpt-4o-mini") is not None and table.price("claude-3-opus") is None
    cost = CostCalculator(table)
    req = request({"attributes": {"gen_ai.request.model": "gpt-4o", "gen_ai.usage.input_tokens": 1_000_000, "gen_ai.usage.output_tokens": 0}})
    cost.process(batch(req))
    assert span_attributes(req)["llm.cost.total"] == 1.0


@pytest.mark.parametrize(
    ("document", "message"),
    [
        ([], "must be a JSON object with a 'models' list"),
        ({"models": [{"input": 1}]}, "models\\[0\\]: needs a non-empty string 'pattern'"),
        ({"models": [{"pattern": "x"}]}, "models\\[0\\] \\(x\\): missing 'input'"),
        ({"models": [{"pattern": "x", "input": -1}]}, "'input' must be a non-negative number"),
        ({"models": [{"pattern": "x", "input": "cheap"}]}, "'input' must be a number, got 'cheap'"),
        ({"models": [], "providers": {"a": {"cached_input": "maybe"}}}, "providers.a.cached_input must be one of included, separate"),
    ],
)
def test_bad_pricing_files_are_refused_with_a_message(document: object, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        parse_pricing(document)


def test_unreadable_pricing_file_names_the_variable(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="PRICING_FILE='/nonexistent.json' cannot be read"):
        load_pricing("/nonexistent.json")
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(ValueError, match="PRICING_FILE=.*bad.json"):
        load_pricing(str(bad))


@pytest.mark.parametrize("attrs", [
    # An empty preferred name falls through to the next one, as genai.extract reads it.
    {"gen_ai.response.model": "", "llm.model_name": "gpt-4o", "gen_ai.usage.input_tokens": 1000},
    # GenAI names win over OpenInference ones wherever they come in the list.
    {"llm.token_count.prompt": 5, "gen_ai.usage.input_tokens": 1000, "gen_ai.request.model": "gpt-4o"},
    # Counts sent as doubles or strings, a model sent as a number: read as extract reads them.
    {"gen_ai.request.model": "gpt-4o", "gen_ai.usage.input_tokens": 1000.0, "gen_ai.usage.output_tokens": "250"},
    {"gen_ai.request.model": 4, "gen_ai.usage.input_tokens": 10},
    {"gen_ai.request.model": "gpt-4o", "gen_ai.usage.input_tokens": 0, "llm.token_count.prompt": 700},
])
def test_the_cost_stage_reads_tokens_and_models_as_the_cross_walk_does(attrs: dict) -> None:
    fields = genai.extract(attrs)
    entry = TABLE.price(fields.response_model or fields.request_model or "")
    out = _priced(attrs)
    if entry is None or (fields.input_tokens is None and fields.output_tokens is None):
        assert "llm.cost.total" not in out
        return
    expected = compute(fields, entry, TABLE.convention(fields.provider, entry))
    assert _costs(attrs) == (float(expected.input), float(expected.output), float(expected.total))


def _exact(entry: ModelPrice, convention: str, input_tokens: int, output_tokens: int, cache_read: int,
           cache_write: int) -> tuple[Decimal, Decimal]:
    """(input, output) cost in plain Decimal arithmetic on the table's prices: the oracle."""
    if convention == "included" and cache_read + cache_write > input_tokens:
        convention = "separate"
    uncached = input_tokens - cache_read - cache_write if convention == "included" else input_tokens
    return (uncached * entry.input + cache_read * entry.cache_read + cache_write * entry.cache_write,
            output_tokens * entry.output)


def _assert_priced_exactly(entry: ModelPrice, convention: str, tokens: tuple[int, int, int, int]) -> None:
    exact_in, exact_out = _exact(entry, convention, *tokens)
    input_tokens, output_tokens, cache_read, cache_write = tokens
    fields = genai.LlmFields(input_tokens=input_tokens, output_tokens=output_tokens, cache_read_tokens=cache_read,
                             cache_write_tokens=cache_write)
    assert compute(fields, entry, convention) == Cost(exact_in, exact_out)
    assert Rates.of(entry).price(convention, *tokens) == (float(exact_in), float(exact_out), float(exact_in + exact_out))


@given(input_tokens=st.integers(0, 10**9), output_tokens=st.integers(0, 10**9), cache_read=st.integers(0, 10**9),
       cache_write=st.integers(0, 10**9), convention=st.sampled_from(("included", "separate")),
       index=st.integers(0, len(TABLE.models) - 1))
def test_the_stage_s_integer_rates_give_exactly_the_decimal_amounts(
    input_tokens: int, output_tokens: int, cache_read: int, cache_write: int, convention: str, index: int,
) -> None:
    # The stage prices with integers over a power of ten; every amount must be float() of the
    # exact Decimal amount, for every model of the table.
    _assert_priced_exactly(TABLE.models[index], convention, (input_tokens, output_tokens, cache_read, cache_write))


@given(tokens=st.tuples(*[st.integers(0, 10**8)] * 4), convention=st.sampled_from(("included", "separate")))
def test_integer_rates_are_exact_for_prices_with_many_decimals(tokens: tuple[int, int, int, int], convention: str) -> None:
    table = parse_pricing({"models": [{"pattern": "odd*", "input": "0.123456789", "output": "7.1",
                                       "cache_read": "0.0001", "cache_write": "1234.5"}]})
    _assert_priced_exactly(table.models[0], convention, tokens)
