"""Where LLM facts live in telemetry attributes, and what they mean once read: one layer for
every convention.

Span attributes and log-record attributes alike go through `extract` (a dict of attribute
values) or, on a hot path that walks protobuf attributes itself, through `SLOTS` and
`normalize`. Each concept lists its names in precedence order: OpenTelemetry GenAI's current
names, then its older ones, then OpenLLMetry's, OpenLIT's and OpenInference's (`llm.*`,
`embedding.*`). The table in docs/COLLECTOR_PROCESSING.md ("GenAI attributes") is this one.

What the layer settles so that nothing after it has to:
- token counts follow OpenTelemetry's meaning: input tokens include cache reads and cache
  writes, output tokens include reasoning tokens. A span that reports cache counts beside its
  input (Anthropic's native API, passed through as it is) is recognised and summed
  (`cache_beside_input`), so no token is priced twice or missed;
- the provider, when the span names none, is inferred from the model name;
- cost: what the collector computed (`observatory.cost`) and what the SDK sent
  (`gen_ai.usage.cost.amount`, OpenLIT's `gen_ai.usage.cost`, OpenInference's `llm.cost.*`)
  are read apart, so both can be kept.
"""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal, InvalidOperation
from typing import Any, NamedTuple

PROVIDER = ("gen_ai.provider.name", "gen_ai.system", "llm.provider", "llm.system")
REQUEST_MODEL = ("gen_ai.request.model", "llm.request.model_name", "llm.request.model")
RESPONSE_MODEL = ("gen_ai.response.model", "llm.response.model", "llm.response.model_name", "llm.model_name",
                  "embedding.model_name")
OPERATION = ("gen_ai.operation.name", "llm.request.type", "openinference.span.kind")
INPUT_TOKENS = ("gen_ai.usage.input_tokens", "gen_ai.usage.prompt_tokens", "llm.usage.prompt_tokens",
                "llm.token_count.prompt")
OUTPUT_TOKENS = ("gen_ai.usage.output_tokens", "gen_ai.usage.completion_tokens", "llm.usage.completion_tokens",
                 "llm.token_count.completion")
TOTAL_TOKENS = ("gen_ai.usage.total_tokens", "llm.usage.total_tokens", "llm.token_count.total",
                "gen_ai.client.token.usage")
CACHE_READ_TOKENS = (
    "gen_ai.usage.cache_read.input_tokens",
    "gen_ai.usage.cache_read_input_tokens",
    "llm.usage.cache_read_input_tokens",
    "llm.token_count.prompt_details.cache_read",
)
CACHE_WRITE_TOKENS = (
    "gen_ai.usage.cache_write.input_tokens",  # the name after semantic conventions v1.41
    "gen_ai.usage.cache_creation.input_tokens",
    "gen_ai.usage.cache_creation_input_tokens",
    "llm.usage.cache_creation_input_tokens",
    "llm.token_count.prompt_details.cache_write",
)
REASONING_TOKENS = ("gen_ai.usage.reasoning.output_tokens", "gen_ai.usage.reasoning_tokens",
                    "llm.usage.reasoning_tokens", "llm.token_count.completion_details.reasoning")

# Cost an SDK sent, in USD. gen_ai.usage.cost.amount is the proposed convention (with
# .currency); gen_ai.usage.cost is OpenLIT's (0 when it has no price list, which is offline).
SDK_COST_TOTAL = ("gen_ai.usage.cost.amount", "gen_ai.usage.cost", "llm.cost.total")
SDK_COST_INPUT = ("llm.cost.prompt",)
SDK_COST_OUTPUT = ("llm.cost.completion",)
SDK_COST_CURRENCY = ("gen_ai.usage.cost.currency",)

# Cost the collector computed, carried to the storage writer in ONE attribute per priced
# span (each attribute added costs about a microsecond on the collector's hot path, and bytes
# in the stream); the writer turns it into typed columns and leaves it out of the stored
# attributes. Its value, '|'-separated (`carry_cost` / `read_cost`):
#   1|source|input|cache_read|cache_write|output|reasoning|scale|sdk_total|price_date|price_ref
# amounts are integers over `scale` USD (exact); source is computed, override or sdk (then
# sdk_total is the SDK's figure that won); price_date is the price's effective-from day or
# empty; price_ref says which price ("genai-prices 0.2.3 openai/gpt-4o-mini").
COST = ("observatory.cost",)
# The span's input as priced, when cache counts were beside it (Anthropic's native usage).
INPUT_TOKENS_NORMALIZED = ("observatory.usage.input_tokens",)

SOURCES = ("computed", "override", "sdk")

# Every concept's names in precedence order; a key's slot is its concept and its rank its
# place in that order. Readers fill the slots in one pass over the attributes and keep the
# best-ranked non-empty value per slot, which is what reading the names in order gives.
CONCEPTS = (
    PROVIDER, REQUEST_MODEL, RESPONSE_MODEL, OPERATION, INPUT_TOKENS, OUTPUT_TOKENS, TOTAL_TOKENS,
    CACHE_READ_TOKENS, CACHE_WRITE_TOKENS, REASONING_TOKENS,
    SDK_COST_TOTAL, SDK_COST_INPUT, SDK_COST_OUTPUT, SDK_COST_CURRENCY,
    COST, INPUT_TOKENS_NORMALIZED,
)
(S_PROVIDER, S_REQUEST_MODEL, S_RESPONSE_MODEL, S_OPERATION, S_INPUT_TOKENS, S_OUTPUT_TOKENS, S_TOTAL_TOKENS,
 S_CACHE_READ_TOKENS, S_CACHE_WRITE_TOKENS, S_REASONING_TOKENS,
 S_SDK_COST_TOTAL, S_SDK_COST_INPUT, S_SDK_COST_OUTPUT, S_SDK_COST_CURRENCY,
 S_COST, S_INPUT_NORMALIZED) = range(len(CONCEPTS))
SLOTS = {key: (slot, rank) for slot, keys in enumerate(CONCEPTS) for rank, key in enumerate(keys)}
UNRANKED = max(len(keys) for keys in CONCEPTS)  # worse than every real rank
ALL_KEYS = frozenset(SLOTS)
# What the collector writes: a reprice or a second collector must not read them as input.
COMPUTED_SLOTS = frozenset((S_COST, S_INPUT_NORMALIZED))
COMPUTED_KEYS = frozenset(key for key, (slot, _) in SLOTS.items() if slot in COMPUTED_SLOTS)

# Instrumentation scopes known to report Anthropic-style usage (cache counts beside the input
# tokens) as the API sent it. Every library recorded in tests/fixtures/genai (OpenInference,
# OpenLLMetry, Logfire, OpenLIT, the anthropic SDK's own spans; 2026-12) adds them in, as the
# GenAI conventions ask. A span whose cache counts exceed its input is read as "beside" whatever
# its scope. PRICING_FILE's "cache_beside_input_scopes" adds names.
CACHE_BESIDE_INPUT_SCOPES: frozenset[str] = frozenset()

# Model-name prefixes -> the provider (OpenTelemetry's gen_ai.provider.name values) for spans
# that name no provider. Longest prefix first.
_PROVIDER_BY_PREFIX = tuple(sorted((
    ("gpt-", "openai"), ("chatgpt-", "openai"), ("o1", "openai"), ("o3", "openai"), ("o4", "openai"),
    ("text-embedding-", "openai"), ("davinci", "openai"), ("babbage", "openai"), ("whisper", "openai"),
    ("dall-e", "openai"), ("tts-", "openai"), ("omni-moderation", "openai"), ("codex-", "openai"),
    ("ft:gpt-", "openai"),
    ("claude", "anthropic"),
    ("gemini", "gcp.gemini"), ("gemma", "gcp.gemini"), ("text-embedding-004", "gcp.gemini"),
    ("mistral", "mistral_ai"), ("mixtral", "mistral_ai"), ("codestral", "mistral_ai"), ("ministral", "mistral_ai"),
    ("pixtral", "mistral_ai"), ("magistral", "mistral_ai"), ("devstral", "mistral_ai"), ("open-mistral", "mistral_ai"),
    ("command", "cohere"), ("embed-english", "cohere"), ("embed-multilingual", "cohere"), ("rerank-", "cohere"),
    ("deepseek", "deepseek"), ("grok", "x_ai"), ("sonar", "perplexity"),
    ("anthropic.", "aws.bedrock"), ("us.anthropic.", "aws.bedrock"), ("eu.anthropic.", "aws.bedrock"),
    ("amazon.", "aws.bedrock"), ("meta.llama", "aws.bedrock"),
), key=lambda pair: -len(pair[0])))


class LlmFields(NamedTuple):
    """One span's (or log record's) LLM facts, normalised. A NamedTuple: the writer makes one
    per LLM span, and a frozen dataclass's __init__ cost a tenth of decode time.

    input_tokens include cache reads and writes; output_tokens include reasoning tokens.
    The cost_* components are the collector's computed prices (None when it had none);
    cost_total_usd is the figure used and cost_source says whose it is; cost_sdk_usd is what
    the SDK sent, kept whichever won.
    """

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
    cost_cache_read_usd: Decimal | None = None
    cost_cache_write_usd: Decimal | None = None
    cost_output_usd: Decimal | None = None
    cost_reasoning_usd: Decimal | None = None
    cost_total_usd: Decimal | None = None
    cost_source: str | None = None
    cost_sdk_usd: Decimal | None = None
    cost_price_ref: str | None = None
    cost_price_date: str | None = None
    provider_inferred: bool = False

    @property
    def is_llm(self) -> bool:
        return self.request_model is not None or self.response_model is not None or self.input_tokens is not None

    @property
    def model(self) -> str | None:
        """The model that answered, else the one asked for."""
        return self.response_model or self.request_model


def _text(value: Any) -> str | None:
    if value is None:
        return None
    if type(value) is not str:
        value = str(value)
    if value[:1].isspace() or value[-1:].isspace():
        value = value.strip()
    return value or None


_MAX_COUNT = 2**63 - 1


def _int(value: Any) -> int | None:
    if type(value) is int:  # the common case: an OTLP int_value
        return value if 0 <= value <= _MAX_COUNT else None
    if value is None or isinstance(value, bool):
        return None
    try:
        number = int(value) if not isinstance(value, float) else int(value) if value.is_integer() else None
    except (TypeError, ValueError, OverflowError):
        return None
    if number is None or number < 0 or number > _MAX_COUNT:
        return None
    return number


# Public names for stages that read a few concepts lazily instead of calling extract().
as_text = _text
as_count = _int


# Below a billion USD per amount: the sum of a span's five components stays inside the cost
# columns' numeric(20, 10).
_MONEY_LIMIT = Decimal(10) ** 9


def _money(value: Any) -> Decimal | None:
    if value is None or isinstance(value, bool):
        return None
    try:
        amount = Decimal(str(value))
    except InvalidOperation:
        return None
    if not amount.is_finite() or amount < 0 or amount >= _MONEY_LIMIT:
        return None
    return amount


as_money = _money


def infer_provider(model: str | None) -> str | None:
    """The provider a model name belongs to, for spans that name none (gen_ai.provider.name values)."""
    if not model:
        return None
    name = model.strip().lower()
    if "/" in name:  # "openai/gpt-4o", "models/gemini-2.5-pro": the part before the slash may say
        head, _, tail = name.partition("/")
        if head in ("openai", "anthropic", "mistral", "cohere", "deepseek", "google", "x-ai", "perplexity"):
            return {"mistral": "mistral_ai", "google": "gcp.gemini", "x-ai": "x_ai"}.get(head, head)
        name = name.rsplit("/", 1)[-1]
    for prefix, provider in _PROVIDER_BY_PREFIX:
        if name.startswith(prefix):
            return provider
    return None


def cache_beside_input(input_tokens: int, cache_read: int, cache_write: int, scope_name: str | None,
                       beside_scopes: frozenset[str] = CACHE_BESIDE_INPUT_SCOPES) -> bool:
    """Whether the span counted cache reads and writes beside its input tokens (Anthropic's
    native usage) rather than inside them (OpenTelemetry, OpenAI)."""
    if cache_read + cache_write > input_tokens:
        return True  # they cannot be inside it
    return bool(scope_name) and scope_name in beside_scopes


class Usage(NamedTuple):
    """Who was called and what was used, normalised (what pricing needs; see LlmFields)."""

    provider: str | None
    provider_inferred: bool
    request_model: str | None
    response_model: str | None
    input_tokens: int | None
    output_tokens: int | None
    total_tokens: int | None
    cache_read_tokens: int | None
    cache_write_tokens: int | None
    reasoning_tokens: int | None

    @property
    def is_llm(self) -> bool:
        return self.request_model is not None or self.response_model is not None or self.input_tokens is not None


_INFERRED: dict[str, str | None] = {}


def usage(found: list[Any], scope_name: str | None = None,
          beside_scopes: frozenset[str] = CACHE_BESIDE_INPUT_SCOPES) -> Usage:
    """Provider, models and token counts from the values `SLOTS` picked (a list indexed by slot)."""
    provider = _text(found[S_PROVIDER])
    request_model = _text(found[S_REQUEST_MODEL])
    response_model = _text(found[S_RESPONSE_MODEL])
    inferred = False
    if provider is None:
        model = response_model or request_model
        if model is not None:
            try:
                provider = _INFERRED[model]
            except KeyError:
                provider = infer_provider(model)
                if len(_INFERRED) < 10_000:  # model names are client-chosen: bound the memo
                    _INFERRED[model] = provider
            inferred = provider is not None
    elif not provider.islower():
        provider = provider.lower()
    input_tokens = _int(found[S_INPUT_TOKENS])
    output_tokens = _int(found[S_OUTPUT_TOKENS])
    cache_read = _int(found[S_CACHE_READ_TOKENS])
    cache_write = _int(found[S_CACHE_WRITE_TOKENS])
    reasoning = _int(found[S_REASONING_TOKENS])
    normalized_input = found[S_INPUT_NORMALIZED]
    if normalized_input is not None and _int(normalized_input) is not None:  # the collector already decided
        input_tokens = _int(normalized_input)
    elif input_tokens is not None and (cache_read or cache_write):
        if cache_beside_input(input_tokens, cache_read or 0, cache_write or 0, scope_name, beside_scopes):
            input_tokens += (cache_read or 0) + (cache_write or 0)
    if output_tokens is not None and reasoning is not None and reasoning > output_tokens:
        output_tokens += reasoning  # reported beside the output: count it in, as OpenAI does
    total_tokens = _int(found[S_TOTAL_TOKENS])
    if input_tokens is not None or output_tokens is not None:
        counted = (input_tokens or 0) + (output_tokens or 0)
        if total_tokens is None or total_tokens < counted:
            total_tokens = counted
    return Usage(provider, inferred, request_model, response_model, input_tokens, output_tokens, total_tokens,
                 cache_read, cache_write, reasoning)


def sdk_cost(found: list[Any]) -> Decimal | None:
    """The cost in USD the SDK sent, if any (None for an amount in another currency)."""
    total, prompt, completion = found[S_SDK_COST_TOTAL], found[S_SDK_COST_INPUT], found[S_SDK_COST_OUTPUT]
    if total is None and prompt is None and completion is None:
        return None
    sdk_total = _money(total)
    if sdk_total is None:
        sdk_input, sdk_output = _money(prompt), _money(completion)
        if sdk_input is not None or sdk_output is not None:
            sdk_total = (sdk_input or Decimal(0)) + (sdk_output or Decimal(0))
    currency = _text(found[S_SDK_COST_CURRENCY])
    if currency is not None and currency.upper() != "USD":
        return None  # no exchange rates here: an amount in another currency is not a USD cost
    return sdk_total


def normalize(found: list[Any], scope_name: str | None = None,
              beside_scopes: frozenset[str] = CACHE_BESIDE_INPUT_SCOPES) -> LlmFields:
    """The LLM facts from the values `SLOTS` picked (a list indexed by slot)."""
    used = usage(found, scope_name, beside_scopes)
    sdk_total = sdk_cost(found)
    carried = read_cost(found[S_COST])
    price_ref = price_date = None
    if carried is not None:
        source, components, total, price_date, price_ref = carried
        if source == "sdk":
            total = total if total is not None else sdk_total
    elif sdk_total is not None:
        # No computed cost (an unknown model, the cost stage off, an older collector): the
        # SDK's figure is all there is.
        source, total = "sdk", sdk_total
        components = [_money(found[S_SDK_COST_INPUT]), None, None, _money(found[S_SDK_COST_OUTPUT]), None]
    else:
        source, total, components = None, None, [None] * 5
    return LlmFields(
        used.provider, used.request_model, used.response_model, _text(found[S_OPERATION]), used.input_tokens,
        used.output_tokens, used.total_tokens, used.cache_read_tokens, used.cache_write_tokens, used.reasoning_tokens,
        *components, total, source, sdk_total, price_ref, price_date,
        used.provider_inferred,
    )


def carry_cost(source: str, amounts: tuple[int, int, int, int, int], scale: int, sdk_total: Any,
               price_date: str | None, price_ref: str) -> str:
    """The value of the `observatory.cost` attribute (see COST)."""
    return (f"1|{source}|{amounts[0]}|{amounts[1]}|{amounts[2]}|{amounts[3]}|{amounts[4]}|{scale}|"
            f"{'' if sdk_total is None else sdk_total}|{price_date or ''}|{price_ref}")


def read_cost(value: Any) -> tuple[str, list[Decimal], Decimal | None, str | None, str] | None:
    """(source, [input, cache read, cache write, output, reasoning], total, price date, price ref)
    from an `observatory.cost` value; None when it is absent or not one."""
    if type(value) is not str or not value.startswith("1|"):
        return None
    parts = value.split("|", 10)
    if len(parts) != 11 or parts[1] not in SOURCES:
        return None
    try:
        numbers = [int(n) for n in parts[2:8]]
    except ValueError:
        return None
    scale = numbers[5]
    if scale <= 0 or any(n < 0 for n in numbers):
        return None
    unit = Decimal(scale)
    components = [Decimal(n) / unit for n in numbers[:5]]
    if any(c >= _MONEY_LIMIT for c in components):
        return None  # not a figure the collector computes (a client may send the attribute): the columns could not hold it
    total = _money(parts[8]) if parts[1] == "sdk" else sum(components, Decimal(0))
    return parts[1], components, total, parts[9] or None, parts[10]


def pick(attrs: Mapping[str, Any], skip_slots: frozenset[int] = frozenset()) -> list[Any] | None:
    """The best-ranked non-empty value of each slot in a dict of attributes; None when the dict
    has none of the keys (most spans)."""
    present = ALL_KEYS.intersection(attrs)
    if not present:
        return None
    found: list[Any] = [None] * len(CONCEPTS)
    ranks = [UNRANKED] * len(CONCEPTS)
    for key in present:
        value = attrs[key]
        if value is None or value == "":
            continue
        slot, rank = SLOTS[key]
        if slot in skip_slots:
            continue
        if rank < ranks[slot]:
            found[slot], ranks[slot] = value, rank
    return found


def extract(attrs: Mapping[str, Any], scope_name: str | None = None,
            beside_scopes: frozenset[str] = CACHE_BESIDE_INPUT_SCOPES) -> LlmFields:
    """The LLM facts of one span's (or log record's) attributes, values as OTLP decodes them."""
    found = pick(attrs)
    if found is None:
        return NOT_LLM
    return normalize(found, scope_name, beside_scopes)


NOT_LLM = LlmFields()
