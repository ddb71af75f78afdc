"""LLM cost: tokens × the model's list price, written as the attributes the writer stores.

Reads provider, model and token counts through common/genai.py (GenAI names, then
OpenInference). Cached input tokens are priced at their own rate without counting any token
twice: OpenTelemetry, OpenAI, Google and DeepSeek count cache reads and writes inside the
input tokens ("included"); Anthropic's API (and Bedrock's) reports them beside the input
tokens ("separate"). A cost the SDK sent is kept as it is; an unknown model leaves the cost
empty and is counted in /metrics.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from collector import metrics
from collector.pipeline import SpanBatch
from collector.processors.pricing import ModelPrice, PricingTable
from common import genai
from common.logging import get_logger
from common.otlp import any_value

log = get_logger("collector.cost")

LLM_KEYS = genai.ALL_KEYS
COST_KEYS = frozenset(genai.COST_INPUT + genai.COST_OUTPUT + genai.COST_TOTAL)
WRITE_INPUT, WRITE_OUTPUT, WRITE_TOTAL = genai.COST_INPUT[0], genai.COST_OUTPUT[0], genai.COST_TOTAL[-1]
MODEL_CACHE_LIMIT = 10_000  # model names are client-chosen: bound the cache
UNKNOWN_LOG_LIMIT = 1000  # log each unknown model once, for at most this many names


@dataclass(frozen=True)
class Cost:
    input: Decimal
    output: Decimal

    @property
    def total(self) -> Decimal:
        return self.input + self.output


def compute(fields: genai.LlmFields, entry: ModelPrice, convention: str) -> Cost:
    """The cost of one LLM call; each token is priced exactly once."""
    input_tokens = fields.input_tokens or 0
    cache_read = fields.cache_read_tokens or 0
    cache_write = fields.cache_write_tokens or 0
    if convention == "included" and cache_read + cache_write > input_tokens:
        convention = "separate"  # the counts cannot be inside the input: the SDK reported them beside it
    uncached = input_tokens - cache_read - cache_write if convention == "included" else input_tokens
    input_cost = uncached * entry.input + cache_read * entry.cache_read + cache_write * entry.cache_write
    # Reasoning tokens are inside the output tokens (OpenTelemetry, OpenAI) and priced as output.
    output_cost = (fields.output_tokens or 0) * entry.output
    return Cost(input_cost, output_cost)


def _read(facts: dict[str, Any], keys: tuple[str, ...]) -> Any:
    """The first of `keys` present with a non-empty value, as genai.extract picks it."""
    for key in keys:
        value = facts.get(key)
        if value is not None:
            python = any_value(value)
            if python is not None and python != "":
                return python
    return None


def _usage(facts: dict[str, Any]) -> genai.LlmFields:
    """The fields pricing needs, by the cross-walk's precedence (common/genai.py)."""
    return genai.LlmFields(
        provider=genai.as_text(_read(facts, genai.PROVIDER)),
        request_model=genai.as_text(_read(facts, genai.REQUEST_MODEL)),
        response_model=genai.as_text(_read(facts, genai.RESPONSE_MODEL)),
        input_tokens=genai.as_count(_read(facts, genai.INPUT_TOKENS)),
        output_tokens=genai.as_count(_read(facts, genai.OUTPUT_TOKENS)),
        cache_read_tokens=genai.as_count(_read(facts, genai.CACHE_READ_TOKENS)),
        cache_write_tokens=genai.as_count(_read(facts, genai.CACHE_WRITE_TOKENS)),
    )


class CostCalculator:
    name = "cost"

    def __init__(self, pricing: PricingTable) -> None:
        self.pricing = pricing
        self._unknown_logged: set[str] = set()
        self._prices: dict[str, ModelPrice | None] = {}

    def _price(self, model: str) -> ModelPrice | None:
        # Few distinct models reach a collector; the cache spares a pattern scan per span.
        if model in self._prices:
            return self._prices[model]
        entry = self.pricing.price(model)
        if len(self._prices) < MODEL_CACHE_LIMIT:
            self._prices[model] = entry
        return entry

    def process(self, batch: SpanBatch) -> SpanBatch:
        outcomes: Counter[str] = Counter()
        for resource_spans in batch.request.resource_spans:
            for scope_spans in resource_spans.scope_spans:
                for span in scope_spans.spans:
                    outcome = self._span(span)
                    if outcome:
                        outcomes[outcome] += 1
        for outcome, count in outcomes.items():  # once a batch: a labelled inc per span costs as much as pricing it
            metrics.COST_SPANS.labels(outcome).inc(count)
        return batch

    def _span(self, span: Any) -> str | None:
        """Price one span in place; the outcome to count, None for spans that are not LLM calls."""
        facts: dict[str, Any] = {}  # key → AnyValue, converted only when read (the hot path)
        for kv in span.attributes:
            key = kv.key
            if key in LLM_KEYS:
                facts[key] = kv.value
        if not facts:
            return None
        fields = _usage(facts)
        if not fields.is_llm:
            return None
        for key in COST_KEYS:
            if _read(facts, (key,)) is not None:
                return "sdk_cost"
        if fields.input_tokens is None and fields.output_tokens is None:
            return "no_tokens"
        model = fields.response_model or fields.request_model
        entry = self._price(model) if model else None
        if entry is None and fields.request_model and model != fields.request_model:
            entry = self._price(fields.request_model)
        if entry is None:
            self._unknown(model, fields.provider)
            return "unknown_model"
        cost = compute(fields, entry, self.pricing.convention(fields.provider, entry))
        for key, amount in ((WRITE_INPUT, cost.input), (WRITE_OUTPUT, cost.output), (WRITE_TOTAL, cost.total)):
            span.attributes.add(key=key).value.double_value = float(amount)
        return "priced"

    def _unknown(self, model: str | None, provider: str | None) -> None:
        name = f"{provider}/{model}"
        if name not in self._unknown_logged and len(self._unknown_logged) < UNKNOWN_LOG_LIMIT:
            self._unknown_logged.add(name)
            log.warning("no price for model: cost left empty (add it to PRICING_FILE)", model=model, provider=provider)
