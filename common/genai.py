"""Where LLM facts live in span attributes: the GenAI / OpenInference cross-walk.

OpenTelemetry GenAI names (`gen_ai.*`) win; older GenAI names and OpenInference names
(`llm.*`) are read where the current ones are absent. The collector's cost processor and
the storage writer's columns both read through this one table.
"""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal, InvalidOperation
from typing import Any, NamedTuple

PROVIDER = ("gen_ai.provider.name", "gen_ai.system", "llm.provider", "llm.system")
REQUEST_MODEL = ("gen_ai.request.model", "llm.request.model_name")
RESPONSE_MODEL = ("gen_ai.response.model", "llm.response.model", "llm.model_name")
OPERATION = ("gen_ai.operation.name", "llm.request.type", "openinference.span.kind")
INPUT_TOKENS = ("gen_ai.usage.input_tokens", "gen_ai.usage.prompt_tokens", "llm.token_count.prompt")
OUTPUT_TOKENS = ("gen_ai.usage.output_tokens", "gen_ai.usage.completion_tokens", "llm.token_count.completion")
TOTAL_TOKENS = ("llm.usage.total_tokens", "llm.token_count.total")
CACHE_READ_TOKENS = (
    "gen_ai.usage.cache_read.input_tokens",
    "gen_ai.usage.cache_read_input_tokens",
    "llm.token_count.prompt_details.cache_read",
)
CACHE_WRITE_TOKENS = (
    "gen_ai.usage.cache_creation.input_tokens",
    "gen_ai.usage.cache_creation_input_tokens",
    "llm.token_count.prompt_details.cache_write",
)
REASONING_TOKENS = ("gen_ai.usage.reasoning.output_tokens", "llm.token_count.completion_details.reasoning")

# Cost in USD. An SDK may send these; the collector's cost processor writes the
# OpenInference names when they are absent, and the writer stores them in cost columns.
COST_INPUT = ("llm.cost.prompt",)
COST_OUTPUT = ("llm.cost.completion",)
COST_TOTAL = ("gen_ai.usage.cost", "llm.cost.total")

# Every concept's names in precedence order; a key's slot is its concept and its rank its
# place in that order. Readers fill the slots in one pass over a span's attributes and keep
# the best-ranked non-empty value per slot, which is what reading the names in order gives.
CONCEPTS = (
    PROVIDER, REQUEST_MODEL, RESPONSE_MODEL, OPERATION, INPUT_TOKENS, OUTPUT_TOKENS, TOTAL_TOKENS,
    CACHE_READ_TOKENS, CACHE_WRITE_TOKENS, REASONING_TOKENS, COST_INPUT, COST_OUTPUT, COST_TOTAL,
)
(S_PROVIDER, S_REQUEST_MODEL, S_RESPONSE_MODEL, S_OPERATION, S_INPUT_TOKENS, S_OUTPUT_TOKENS, S_TOTAL_TOKENS,
 S_CACHE_READ_TOKENS, S_CACHE_WRITE_TOKENS, S_REASONING_TOKENS, S_COST_INPUT, S_COST_OUTPUT, S_COST_TOTAL) = range(len(CONCEPTS))
SLOTS = {key: (slot, rank) for slot, keys in enumerate(CONCEPTS) for rank, key in enumerate(keys)}
UNRANKED = max(len(keys) for keys in CONCEPTS)  # worse than every real rank
ALL_KEYS = frozenset(SLOTS)


class LlmFields(NamedTuple):
    """One span's LLM facts. A NamedTuple: the writer makes one per LLM span, and a frozen
    dataclass's __init__ cost a tenth of decode time."""

    provider: str | None = None
    request_model: str | None = None
    response_model: str | None = None
    operation: str | None = None
    input_tokens: int | None = None
    output_tokens: int | None = None
    total_tokens: int | None = None
    cache_read_tokens: int | None = None
    cache_write_tokens: int | None = None
    reasoning_tokens: int | None = None
    cost_input_usd: Decimal | None = None
    cost_output_usd: Decimal | None = None
    cost_total_usd: Decimal | None = None

    @property
    def is_llm(self) -> bool:
        return self.request_model is not None or self.response_model is not None or self.input_tokens is not None


def _text(value: Any) -> str | None:
    return None if value is None else str(value)


def _int(value: Any) -> int | None:
    if value is None or isinstance(value, bool):
        return None
    try:
        number = int(value) if not isinstance(value, float) else int(value) if value.is_integer() else None
    except (TypeError, ValueError):
        return None
    if number is None or number < 0 or number > 2**63 - 1:
        return None
    return number


# Public names for stages that read a few concepts lazily instead of calling extract().
as_text = _text
as_count = _int


def _money(value: Any) -> Decimal | None:
    if value is None or isinstance(value, bool):
        return None
    try:
        amount = Decimal(str(value))
    except InvalidOperation:
        return None
    if not amount.is_finite() or amount < 0 or amount >= Decimal(10) ** 9:
        return None
    return amount


def extract(attrs: Mapping[str, Any]) -> LlmFields:
    """The LLM facts of one span's attributes (values as OTLP decodes them)."""
    present = ALL_KEYS.intersection(attrs)
    if not present:
        return NOT_LLM
    found: list[Any] = [None] * len(CONCEPTS)
    ranks = [UNRANKED] * len(CONCEPTS)
    for key in present:
        value = attrs[key]
        if value is None or value == "":
            continue
        slot, rank = SLOTS[key]
        if rank < ranks[slot]:
            found[slot], ranks[slot] = value, rank
    input_tokens = _int(found[S_INPUT_TOKENS])
    output_tokens = _int(found[S_OUTPUT_TOKENS])
    total_tokens = _int(found[S_TOTAL_TOKENS])
    if total_tokens is None and (input_tokens is not None or output_tokens is not None):
        total_tokens = (input_tokens or 0) + (output_tokens or 0)
    cost_input = _money(found[S_COST_INPUT])
    cost_output = _money(found[S_COST_OUTPUT])
    cost_total = _money(found[S_COST_TOTAL])
    if cost_total is None and (cost_input is not None or cost_output is not None):
        cost_total = (cost_input or Decimal(0)) + (cost_output or Decimal(0))
    return LlmFields(
        _text(found[S_PROVIDER]), _text(found[S_REQUEST_MODEL]), _text(found[S_RESPONSE_MODEL]),
        _text(found[S_OPERATION]), input_tokens, output_tokens, total_tokens,
        _int(found[S_CACHE_READ_TOKENS]), _int(found[S_CACHE_WRITE_TOKENS]), _int(found[S_REASONING_TOKENS]),
        cost_input, cost_output, cost_total,
    )


NOT_LLM = LlmFields()
