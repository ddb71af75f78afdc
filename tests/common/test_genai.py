"""The GenAI normalisation layer: every convention's names, token meaning, provider inference.

Used for spans and for log records alike: these tests pass plain dicts of attribute values,
as a log record's attributes decode.
"""

from __future__ import annotations

from decimal import Decimal

import pytest

from common import genai


@pytest.mark.parametrize(("attrs", "field", "value"), [
    ({"gen_ai.provider.name": "openai"}, "provider", "openai"),
    ({"gen_ai.system": "Anthropic"}, "provider", "anthropic"),
    ({"llm.provider": "azure", "llm.system": "openai"}, "provider", "azure"),
    ({"llm.request.model_name": "gpt-4o"}, "request_model", "gpt-4o"),
    ({"llm.model_name": "gpt-4o-2024-08-06"}, "response_model", "gpt-4o-2024-08-06"),
    ({"embedding.model_name": "text-embedding-3-small"}, "response_model", "text-embedding-3-small"),
    ({"gen_ai.usage.prompt_tokens": 7}, "input_tokens", 7),
    ({"llm.usage.prompt_tokens": 7}, "input_tokens", 7),
    ({"llm.token_count.prompt": "7"}, "input_tokens", 7),
    ({"gen_ai.usage.completion_tokens": 9}, "output_tokens", 9),
    ({"gen_ai.usage.cache_write.input_tokens": 5, "gen_ai.usage.input_tokens": 10}, "cache_write_tokens", 5),
    ({"gen_ai.usage.cache_creation.input_tokens": 5, "gen_ai.usage.input_tokens": 10}, "cache_write_tokens", 5),
    ({"gen_ai.usage.cache_creation_input_tokens": 5, "gen_ai.usage.input_tokens": 10}, "cache_write_tokens", 5),
    ({"llm.token_count.prompt_details.cache_write": 5, "llm.token_count.prompt": 10}, "cache_write_tokens", 5),
    ({"gen_ai.usage.cache_read_input_tokens": 4, "gen_ai.usage.input_tokens": 10}, "cache_read_tokens", 4),
    ({"llm.token_count.prompt_details.cache_read": 4, "llm.token_count.prompt": 10}, "cache_read_tokens", 4),
    ({"gen_ai.usage.reasoning_tokens": 3, "gen_ai.usage.output_tokens": 9}, "reasoning_tokens", 3),
    ({"llm.token_count.completion_details.reasoning": 3, "llm.token_count.completion": 9}, "reasoning_tokens", 3),
    ({"gen_ai.usage.cost": 0.25, "gen_ai.usage.input_tokens": 1}, "cost_sdk_usd", Decimal("0.25")),
    ({"gen_ai.usage.cost.amount": 0.25, "gen_ai.usage.cost.currency": "USD"}, "cost_sdk_usd", Decimal("0.25")),
    ({"llm.cost.prompt": 0.1, "llm.cost.completion": 0.2}, "cost_sdk_usd", Decimal("0.3")),
])
def test_each_convention_s_name_is_read(attrs: dict, field: str, value: object) -> None:
    assert getattr(genai.extract(attrs), field) == value


def test_the_current_name_wins_over_older_ones() -> None:
    fields = genai.extract({"gen_ai.system": "az.ai.openai", "gen_ai.provider.name": "azure.ai.openai",
                            "gen_ai.usage.cache_creation.input_tokens": 1, "gen_ai.usage.cache_write.input_tokens": 2,
                            "gen_ai.usage.input_tokens": 10})
    assert (fields.provider, fields.cache_write_tokens) == ("azure.ai.openai", 2)


def test_cache_counts_beside_the_input_are_summed_into_it() -> None:
    beside = genai.extract({"gen_ai.usage.input_tokens": 100, "gen_ai.usage.cache_read.input_tokens": 3000,
                            "gen_ai.usage.cache_creation.input_tokens": 2000})
    inside = genai.extract({"gen_ai.usage.input_tokens": 5100, "gen_ai.usage.cache_read.input_tokens": 3000,
                            "gen_ai.usage.cache_creation.input_tokens": 2000})
    assert beside.input_tokens == inside.input_tokens == 5100
    named = genai.extract({"gen_ai.usage.input_tokens": 5000, "gen_ai.usage.cache_read.input_tokens": 3000},
                          "acme.raw", frozenset({"acme.raw"}))
    assert named.input_tokens == 8000


def test_reasoning_beside_the_output_is_counted_in_and_totals_are_never_short() -> None:
    fields = genai.extract({"gen_ai.usage.output_tokens": 10, "gen_ai.usage.reasoning.output_tokens": 40,
                            "gen_ai.usage.input_tokens": 5, "gen_ai.usage.total_tokens": 15})
    assert (fields.output_tokens, fields.total_tokens) == (50, 55)


@pytest.mark.parametrize(("model", "provider"), [
    ("gpt-4o-mini", "openai"), ("o3-mini-2025-01-31", "openai"), ("text-embedding-3-small", "openai"),
    ("claude-sonnet-4-5-20250929", "anthropic"), ("gemini-2.5-pro", "gcp.gemini"), ("models/gemini-2.5-flash", "gcp.gemini"),
    ("mistral-large-latest", "mistral_ai"), ("codestral-latest", "mistral_ai"), ("command-r-plus", "cohere"),
    ("deepseek-chat", "deepseek"), ("grok-4", "x_ai"), ("us.anthropic.claude-3-5-haiku-20241022-v1:0", "aws.bedrock"),
    ("openai/gpt-4o", "openai"), ("my-own-model", None), ("", None),
])
def test_the_provider_is_inferred_from_the_model(model: str, provider: str | None) -> None:
    fields = genai.extract({"gen_ai.request.model": model, "gen_ai.usage.input_tokens": 1})
    assert fields.provider == provider
    assert fields.provider_inferred == (provider is not None)


def test_a_span_s_own_provider_is_kept_even_if_the_model_suggests_another() -> None:
    assert genai.extract({"gen_ai.provider.name": "openai", "gen_ai.request.model": "gemini-2.5-pro"}).provider == "openai"


@pytest.mark.parametrize("value", [-1, 2**64, "many", 1.5, True, float("nan")])
def test_bad_counts_are_dropped_not_stored(value: object) -> None:
    assert genai.extract({"gen_ai.request.model": "m", "gen_ai.usage.input_tokens": value}).input_tokens is None


def test_a_cost_in_another_currency_or_negative_or_huge_is_not_taken() -> None:
    for attrs in ({"gen_ai.usage.cost.amount": 1.0, "gen_ai.usage.cost.currency": "EUR"},
                  {"gen_ai.usage.cost": -1}, {"gen_ai.usage.cost": 1e12}, {"gen_ai.usage.cost": "free"}):
        fields = genai.extract({"gen_ai.request.model": "m", **attrs})
        assert (fields.cost_sdk_usd, fields.cost_total_usd) == (None, None), attrs


def test_what_the_collector_computed_is_read_back_with_its_source() -> None:
    # 1|source|input|cache read|cache write|output|reasoning|scale|sdk total|price date|price ref
    fields = genai.extract({"gen_ai.request.model": "m", "gen_ai.usage.input_tokens": 10, "gen_ai.usage.cost": 9.0,
                            "observatory.cost": "1|override|50|0|0|25|0|100|3|2026-03-01|PRICING_FILE p.json m|x*"})
    assert (fields.cost_input_usd, fields.cost_cache_read_usd, fields.cost_output_usd) == (Decimal("0.5"), 0, Decimal("0.25"))
    assert (fields.cost_total_usd, fields.cost_source, fields.cost_sdk_usd) == (Decimal("0.75"), "override", Decimal(9))
    assert (fields.cost_price_date, fields.cost_price_ref) == ("2026-03-01", "PRICING_FILE p.json m|x*")
    won = genai.extract({"gen_ai.request.model": "m", "gen_ai.usage.cost": 9.0,
                         "observatory.cost": "1|sdk|50|0|0|0|0|100|9.0||genai-prices x"})
    assert (won.cost_total_usd, won.cost_source, won.cost_input_usd) == (Decimal(9), "sdk", Decimal("0.5"))


@pytest.mark.parametrize("value", ["2|computed|1|0|0|0|0|1||", "1|free|1|0|0|0|0|1|||r", "1|computed|x|0|0|0|0|1|||r",
                                   "1|computed|1|0|0|0|0|0|||r", "1|computed|-1|0|0|0|0|1|||r", 7])
def test_a_malformed_cost_carrier_is_ignored(value: object) -> None:
    fields = genai.extract({"gen_ai.request.model": "m", "observatory.cost": value})
    assert (fields.cost_total_usd, fields.cost_source) == (None, None)


def test_attributes_without_llm_keys_are_not_llm() -> None:
    assert genai.extract({"http.route": "/x"}) is genai.NOT_LLM
    assert not genai.extract({"gen_ai.operation.name": "chat"}).is_llm
