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
from collector.processors.validation import NUL, TEXT_SLOTS, TOKEN_SLOTS, LlmValues
from common import genai
from common.logging import get_logger
from common.otlp import any_value

log = get_logger("collector.cost")

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
    """The cost of one LLM call as exact Decimals; each token is priced exactly once."""
    rates = Rates.of(entry)
    paid_in, paid_out = rates.paid(convention, fields.input_tokens or 0, fields.output_tokens or 0,
                                   fields.cache_read_tokens or 0, fields.cache_write_tokens or 0)
    return Cost(Decimal(paid_in) / rates.scale, Decimal(paid_out) / rates.scale)


@dataclass(frozen=True)
class Rates:
    """A model's per-token prices as integers over one power of ten (`scale`).

    Both compute() and the stage's hot path price with these: integer products are exact,
    and one int / int division is a correctly rounded float, so the stage writes bit for bit
    float() of the Decimal amounts compute() returns, without Decimal arithmetic per span.
    """

    input: int
    output: int
    cache_read: int
    cache_write: int
    scale: int

    @classmethod
    def of(cls, entry: ModelPrice) -> "Rates":
        prices = (entry.input, entry.output, entry.cache_read, entry.cache_write)
        exponent = min(min(int(p.as_tuple().exponent) for p in prices), 0)
        return cls(*(int(p.scaleb(-exponent)) for p in prices), 10 ** -exponent)  # scaleb only moves the exponent: exact

    def paid(self, convention: str, input_tokens: int, output_tokens: int, cache_read: int,
             cache_write: int) -> tuple[int, int]:
        """(input, output) cost in units of 1/scale USD; each token is priced exactly once."""
        if convention == "included" and cache_read + cache_write > input_tokens:
            convention = "separate"  # the counts cannot be inside the input: the SDK reported them beside it
        uncached = input_tokens - cache_read - cache_write if convention == "included" else input_tokens
        paid_in = uncached * self.input + cache_read * self.cache_read + cache_write * self.cache_write
        # Reasoning tokens are inside the output tokens (OpenTelemetry, OpenAI) and priced as output.
        return paid_in, output_tokens * self.output

    def price(self, convention: str, input_tokens: int, output_tokens: int, cache_read: int,
              cache_write: int) -> tuple[float, float, float]:
        """(input, output, total) in USD as floats."""
        paid_in, paid_out = self.paid(convention, input_tokens, output_tokens, cache_read, cache_write)
        return paid_in / self.scale, paid_out / self.scale, (paid_in + paid_out) / self.scale





def _facts(attributes: Any, llm_values: LlmValues | None = None) -> list[Any] | None:
    """The span's LLM values by genai slot, as genai.extract would pick them from a dict of the
    attributes, in one pass over the protobuf attributes; None for a span with none of the keys
    (most spans). Only the values in genai's slots are converted.

    With `llm_values` (validation's rules), every value read here is also made storable on
    the way (tokens clamped, texts cleaned), so the attributes are read once for both
    stages. The values genai.extract (and so the writer) can pick are exactly the ones read
    here: a value ranked below one already read is never the pick."""
    found: list[Any] | None = None
    ranks: list[int] = []
    slots = genai.SLOTS
    if llm_values is not None:  # the checks inline: a method call per value cost as much as the rest
        max_tokens, max_chars = llm_values.limits.max_tokens, llm_values.max_chars
    for kv in attributes:
        slot_rank = slots.get(kv.key)
        if slot_rank is None:
            continue
        slot, rank = slot_rank
        if found is None:
            found, ranks = [None] * len(genai.CONCEPTS), [genai.UNRANKED] * len(genai.CONCEPTS)
        if rank <= ranks[slot]:  # <=: a repeated key's last value wins, as in a dict of the attributes
            value = kv.value
            # Names are strings and counts ints: read those fields first (an empty string or a
            # zero could be any kind, so then ask which it is).
            plain = value.string_value or value.int_value or any_value(value)
            if llm_values is not None and (
                (slot in TOKEN_SLOTS and type(plain) is int and plain > max_tokens)
                or (slot in TEXT_SLOTS and (type(plain) is not str or len(plain) > max_chars or NUL in plain))
            ):
                llm_values.normalize(value, kv.key)
                plain = value.string_value or value.int_value or any_value(value)
            if plain is not None and plain != "":
                found[slot], ranks[slot] = plain, rank
    return found


class CostCalculator:
    name = "cost"

    def __init__(self, pricing: PricingTable, llm_values: LlmValues | None = None) -> None:
        self.pricing = pricing
        self._llm_values = llm_values
        self._unknown_logged: set[str] = set()
        self._prices: dict[str, tuple[ModelPrice, Rates] | None] = {}

    def _price(self, model: str) -> tuple[ModelPrice, Rates] | None:
        # Few distinct models reach a collector; the cache spares a pattern scan per span.
        if model in self._prices:
            return self._prices[model]
        entry = self.pricing.price(model)
        priced = (entry, Rates.of(entry)) if entry is not None else None
        if len(self._prices) < MODEL_CACHE_LIMIT:
            self._prices[model] = priced
        return priced

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
        found = _facts(span.attributes, self._llm_values)
        if found is None:
            return None
        as_text, as_count = genai.as_text, genai.as_count
        request_model, response_model = as_text(found[genai.S_REQUEST_MODEL]), as_text(found[genai.S_RESPONSE_MODEL])
        input_tokens, output_tokens = as_count(found[genai.S_INPUT_TOKENS]), as_count(found[genai.S_OUTPUT_TOKENS])
        if request_model is None and response_model is None and input_tokens is None:
            return None  # not an LLM call (genai.LlmFields.is_llm)
        if found[genai.S_COST_INPUT] is not None or found[genai.S_COST_OUTPUT] is not None or found[genai.S_COST_TOTAL] is not None:
            return "sdk_cost"
        if input_tokens is None and output_tokens is None:
            return "no_tokens"
        provider = as_text(found[genai.S_PROVIDER])
        model = response_model or request_model
        priced = self._price(model) if model else None
        if priced is None and request_model and model != request_model:
            priced = self._price(request_model)
        if priced is None:
            self._unknown(model, provider)
            return "unknown_model"
        entry, rates = priced
        amounts = rates.price(self.pricing.convention(provider, entry), input_tokens or 0, output_tokens or 0,
                              as_count(found[genai.S_CACHE_READ_TOKENS]) or 0, as_count(found[genai.S_CACHE_WRITE_TOKENS]) or 0)
        attributes = span.attributes
        for key, amount in zip((WRITE_INPUT, WRITE_OUTPUT, WRITE_TOTAL), amounts):
            attributes.add(key=key).value.double_value = amount
        return "priced"

    def _unknown(self, model: str | None, provider: str | None) -> None:
        name = f"{provider}/{model}"
        if name not in self._unknown_logged and len(self._unknown_logged) < UNKNOWN_LOG_LIMIT:
            self._unknown_logged.add(name)
            log.warning("no price for model: cost left empty (add it to PRICING_FILE)", model=model, provider=provider)
