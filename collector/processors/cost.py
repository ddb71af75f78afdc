"""LLM cost: each kind of token times its price, written as attributes the writer stores.

Reads a span's LLM facts through common/genai.py, which settles the conventions (input
includes cache reads and writes, output includes reasoning, provider inferred from the model
where absent). Prices come from collector/processors/pricing.py (genai-prices with
PRICING_FILE on top), looked up once per (provider, model).

The cost the SDK sent is kept beside the computed one. Which becomes the span's cost
(the source in the `observatory.cost` attribute the writer reads) is SDK_COST_POLICY's choice:
`plausible` (default) takes the SDK's figure unless it is zero while tokens were used (OpenLIT
sends 0 whenever it has no price list) or there is no computed one to compare; `always`
takes any SDK figure; `never` only the computed one.

An unknown model leaves the computed cost empty, is counted in
`cost_unpriced_spans_total{model}` (bounded) and logged once per name.
"""

from __future__ import annotations

from collections import Counter
from decimal import Decimal
from typing import Any

from collector import metrics
from collector.pipeline import SpanBatch
from collector.processors.pricing import PriceBook, Priced, price_call
from collector.processors.validation import NUL, TEXT_SLOTS, TOKEN_SLOTS, LlmValues
from common import genai
from common.logging import get_logger
from common.otlp import any_value

log = get_logger("collector.cost")

SDK_COST_POLICIES = ("plausible", "always", "never")
UNKNOWN_LOG_LIMIT = 1000  # log each unknown model once, for at most this many names
UNKNOWN_METRIC_LIMIT = 200  # distinct model labels on the unpriced metric; the rest count as "other"
_COST_KEY = genai.COST[0]
_INPUT_KEY = genai.INPUT_TOKENS_NORMALIZED[0]
_NO_VALUES = [None] * len(genai.CONCEPTS)


def span_facts(attributes: Any, llm_values: LlmValues | None = None) -> list[Any] | None:
    """The span's LLM values by genai slot, as genai.pick would choose them from a dict of the
    attributes, in one pass over the protobuf attributes; None for a span with none of the
    keys (most spans). Computed-cost keys are not read as input (a span priced by a second
    collector is priced again from its own facts).

    With `llm_values` (validation's rules), every value read here is also made storable on
    the way (tokens clamped, texts cleaned), so the attributes are read once for both
    stages. The values genai.extract (and so the writer) can pick are exactly the ones read
    here: a value ranked below one already read is never the pick. That includes computed
    keys a client sent: their token count is clamped too, though it is not read as input."""
    found: list[Any] | None = None
    ranks: list[int] = []
    slots = genai.SLOTS
    computed = genai.COMPUTED_SLOTS
    if llm_values is not None:  # the checks inline: a method call per value cost as much as the rest
        max_tokens, max_chars = llm_values.limits.max_tokens, llm_values.max_chars
    for kv in attributes:
        slot_rank = slots.get(kv.key)
        if slot_rank is None:
            continue
        slot, rank = slot_rank
        if slot in computed:
            if llm_values is not None and slot in TOKEN_SLOTS:
                llm_values.tokens(kv.value, kv.key)
            continue
        if found is None:
            found, ranks = list(_NO_VALUES), [genai.UNRANKED] * len(genai.CONCEPTS)
        if rank <= ranks[slot]:  # <=: a repeated key's last value wins, as in a dict of the attributes
            value = kv.value
            # Names are strings and counts ints: read those fields first (an empty string or a
            # zero could be any kind, so then ask which it is).
            plain = value.string_value or value.int_value or any_value(value)
            if llm_values is not None and (
                (slot in TOKEN_SLOTS and (type(plain) is not int or plain > max_tokens))
                or (slot in TEXT_SLOTS and (type(plain) is not str or len(plain) > max_chars or NUL in plain))
            ):
                llm_values.normalize(value, kv.key)
                plain = value.string_value or value.int_value or any_value(value)
            if plain is not None and plain != "":
                found[slot], ranks[slot] = plain, rank
    return found


def choose(priced: Priced | None, sdk: Decimal | None, tokens_used: int, policy: str) -> str | None:
    """Whose figure becomes the span's cost: "computed"/"override" (the price's source), "sdk", or None."""
    if sdk is not None and policy != "never":
        if policy == "always" or priced is None or sdk > 0 or tokens_used == 0:
            return "sdk"
    return priced.period.source if priced is not None else None


class CostCalculator:
    name = "cost"

    def __init__(self, prices: PriceBook, sdk_cost_policy: str = "plausible",
                 llm_values: LlmValues | None = None) -> None:
        if sdk_cost_policy not in SDK_COST_POLICIES:
            raise ValueError(f"SDK_COST_POLICY must be one of {', '.join(SDK_COST_POLICIES)}, got {sdk_cost_policy!r}")
        self.prices = prices
        self.policy = sdk_cost_policy
        self._beside = genai.CACHE_BESIDE_INPUT_SCOPES | prices.beside_scopes
        self._llm_values = llm_values
        self._unknown_logged: set[str] = set()
        self._unknown_labels: set[str] = set()

    def process(self, batch: SpanBatch) -> SpanBatch:
        outcomes: Counter[str] = Counter()
        unpriced: Counter[str] = Counter()
        for resource_spans in batch.request.resource_spans:
            for scope_spans in resource_spans.scope_spans:
                scope_name = scope_spans.scope.name or None
                for span in scope_spans.spans:
                    outcome = self._span(span, scope_name, unpriced)
                    if outcome:
                        outcomes[outcome] += 1
        for outcome, count in outcomes.items():  # once a batch: a labelled inc per span costs as much as pricing it
            metrics.COST_SPANS.labels(outcome).inc(count)
        for model, count in unpriced.items():
            metrics.COST_UNPRICED.labels(model).inc(count)
        return batch

    def _span(self, span: Any, scope_name: str | None, unpriced: Counter[str]) -> str | None:
        """Price one span in place; the outcome to count, None for spans that are not LLM calls."""
        found = span_facts(span.attributes, self._llm_values)
        if found is None:
            return None
        used = genai.usage(found, scope_name, self._beside)
        if not used.is_llm:
            return None
        input_tokens, output_tokens = used.input_tokens, used.output_tokens
        priced = None
        if input_tokens is not None or output_tokens is not None:
            period = self.prices.period(used.provider, used.response_model, used.request_model,
                                        span.start_time_unix_nano)
            if period is None:
                self._unknown(used, unpriced)
            else:
                priced = price_call(period, input_tokens or 0, output_tokens or 0, used.cache_read_tokens or 0,
                                    used.cache_write_tokens or 0, used.reasoning_tokens or 0)
        sdk = genai.sdk_cost(found)
        source = choose(priced, sdk, (input_tokens or 0) + (output_tokens or 0), self.policy)
        if priced is not None:
            # One attribute carries it all to the writer (common/genai.py, COST): each one
            # added costs about a microsecond here.
            period = priced.period
            attributes = span.attributes
            attributes.add(key=_COST_KEY).value.string_value = genai.carry_cost(
                source, priced[:5], priced.scale, sdk if source == "sdk" else None,  # type: ignore[arg-type]
                period.effective_from, period.ref)
            if input_tokens != found[genai.S_INPUT_TOKENS]:  # cache counts were beside the input: say what was priced
                attributes.add(key=_INPUT_KEY).value.int_value = input_tokens
        if source is None:
            return "unknown_model" if priced is None and (input_tokens is not None or output_tokens is not None) \
                else "no_tokens"
        return "sdk_cost" if source == "sdk" else "priced"

    def _unknown(self, used: genai.Usage, unpriced: Counter[str]) -> None:
        model = used.response_model or used.request_model or ""
        if model in self._unknown_labels or len(self._unknown_labels) < UNKNOWN_METRIC_LIMIT:
            self._unknown_labels.add(model)
            unpriced[model] += 1
        else:
            unpriced["other"] += 1
        name = f"{used.provider}/{model}"
        if name not in self._unknown_logged and len(self._unknown_logged) < UNKNOWN_LOG_LIMIT:
            self._unknown_logged.add(name)
            log.warning("no price for model: cost left empty (add it to PRICING_FILE)", model=model,
                        provider=used.provider)
