"""LLM prices: the genai-prices library's bundled data, with the user's PRICING_FILE on top.

Both are read once at start, without network access. A price is looked up once per
(provider, model) and kept as a `Schedule`: the price periods of that model (genai-prices'
effective dates and the user's `effective_from` entries), each a `TierTable` of integer
per-token rates (long-context tiers chosen by the call's input tokens). Pricing a span is
then a few integer multiplications. See docs/COLLECTOR_PROCESSING.md ("Pricing").

Rates per kind of token, each falling back only where the price list has no separate price:
input (tokens neither read from nor written to a cache), cache read (else the input rate),
cache write (else the input rate), output (tokens that are not reasoning), reasoning (else
the output rate).
"""

from __future__ import annotations

import bisect
import fnmatch
import json
import re
from dataclasses import dataclass, field
from datetime import date, datetime, timezone
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any, NamedTuple

from common.settings import SettingsError

PER_MTOK = 1_000_000
_EPOCH = date(1970, 1, 1)
DAY_NS = 86_400 * 10**9
# gen_ai.provider.name values (and older gen_ai.system ones) -> genai-prices provider ids.
PROVIDER_IDS = {
    "openai": "openai", "azure.ai.openai": "azure", "azure.ai.inference": "azure", "az.ai.openai": "azure",
    "az.ai.inference": "azure", "azure": "azure", "anthropic": "anthropic", "aws.bedrock": "aws", "aws_bedrock": "aws",
    "bedrock": "aws", "gcp.gemini": "google", "gcp.vertex_ai": "google", "gcp.gen_ai": "google", "google": "google",
    "vertex_ai": "google", "vertexai": "google", "gemini": "google", "mistral_ai": "mistral", "mistralai": "mistral",
    "mistral": "mistral", "cohere": "cohere", "deepseek": "deepseek", "x_ai": "x-ai", "xai": "x-ai", "groq": "groq",
    "perplexity": "perplexity", "together": "together", "together_ai": "together", "fireworks": "fireworks",
    "openrouter": "openrouter", "cerebras": "cerebras",
}
# Hosting prefixes that name where a model runs, not which model it is.
_HOST_PREFIX = re.compile(r"^(?:[a-z]{2,4}\.)?(?:anthropic|meta|mistral|cohere|amazon|deepseek|google|openai)\.")
_VERSION_SUFFIX = re.compile(r"-v\d+(?::\d+)?$")  # Bedrock's "-v1:0"


@dataclass(frozen=True)
class Rates:
    """Per-token prices of one tier as integers over `scale` (USD per token = rate / scale)."""

    input: int
    cache_read: int
    cache_write: int
    output: int
    reasoning: int
    scale: int

    @classmethod
    def from_mtok(cls, input: Decimal, cache_read: Decimal | None, cache_write: Decimal | None,
                  output: Decimal, reasoning: Decimal | None) -> "Rates":
        prices = (input, input if cache_read is None else cache_read, input if cache_write is None else cache_write,
                  output, output if reasoning is None else reasoning)
        exponent = min(min(int(p.as_tuple().exponent) for p in prices), 0)
        # scaleb only moves the exponent: the integers are exact.
        return cls(*(int(p.scaleb(-exponent)) for p in prices), 10 ** -exponent * PER_MTOK)


@dataclass(frozen=True)
class TierTable:
    """A price period's rates by the call's input tokens: the highest tier whose threshold the
    input (cache reads and writes included) is above applies to every token of the call, as
    providers bill long context."""

    starts: tuple[int, ...]  # thresholds, ascending; the base rates sit at -1
    rates: tuple[Rates, ...]

    def at(self, input_tokens: int) -> Rates:
        if len(self.starts) == 1:
            return self.rates[0]
        return self.rates[bisect.bisect_left(self.starts, input_tokens) - 1]


@dataclass(frozen=True)
class Period:
    start_ns: int  # 0 for "always"
    tiers: TierTable
    source: str  # "computed" (genai-prices) or "override" (PRICING_FILE)
    ref: str
    effective_from: str | None  # YYYY-MM-DD


@dataclass(frozen=True)
class Schedule:
    """Every price period of one (provider, model), by start time."""

    starts: tuple[int, ...]
    periods: tuple[Period, ...]
    library_model: Any = None  # set when the price depends on the time of day (genai-prices' off-peak prices)
    library_ref: str = ""

    def at(self, start_ns: int) -> Period:
        if len(self.starts) == 1 and self.library_model is None:  # most models: one price, always
            return self.periods[0]
        index = bisect.bisect_right(self.starts, start_ns) - 1
        period = self.periods[max(index, 0)]
        if self.library_model is not None and period.source == "computed":
            return _time_of_day_period(self.library_model, start_ns, self.library_ref)
        return period


class Priced(NamedTuple):
    """One call's cost, as integers over `scale` USD (a NamedTuple: one is made per priced span)."""

    input: int
    cache_read: int
    cache_write: int
    output: int
    reasoning: int
    scale: int
    period: Period

    @property
    def total(self) -> int:
        return self.input + self.cache_read + self.cache_write + self.output + self.reasoning

    def usd(self) -> tuple[Decimal, Decimal, Decimal, Decimal, Decimal, Decimal]:
        """(input, cache read, cache write, output, reasoning, total) as exact Decimals."""
        scale = Decimal(self.scale)
        return tuple(Decimal(v) / scale for v in (self.input, self.cache_read, self.cache_write, self.output,
                                                  self.reasoning, self.total))  # type: ignore[return-value]


def price_call(period: Period, input_tokens: int, output_tokens: int, cache_read: int, cache_write: int,
               reasoning: int) -> Priced:
    """The cost of one call. Counts follow OpenTelemetry's meaning (common/genai.py normalises
    them): input includes cache reads and writes, output includes reasoning. Each token is
    priced exactly once."""
    cached = cache_read + cache_write
    if cached > input_tokens:  # inconsistent counts: never price a negative number of tokens
        input_tokens = cached
    reasoning = min(reasoning, output_tokens)
    rates = period.tiers.at(input_tokens)
    return Priced(
        (input_tokens - cached) * rates.input, cache_read * rates.cache_read, cache_write * rates.cache_write,
        (output_tokens - reasoning) * rates.output, reasoning * rates.reasoning, rates.scale, period,
    )


# --- genai-prices -----------------------------------------------------------------------------

def _library():  # noqa: ANN202 - imported on first use: 0.2 s of import and 0.7 s of data
    import genai_prices
    from genai_prices import data_snapshot, types

    return genai_prices, data_snapshot, types


def library_version() -> str:
    genai_prices, _, _ = _library()
    return f"genai-prices {genai_prices.__version__}"


def _mtok(value: Any, tier_start: int | None) -> Decimal | None:
    """A price per 1M tokens from genai-prices (a Decimal or TieredPrices) at a tier threshold."""
    if value is None:
        return None
    base = getattr(value, "base", None)
    if base is None:
        return value
    price = base
    for tier in value.tiers:
        if tier_start is not None and tier_start >= tier.start:
            price = tier.price
    return price


def _tier_table(model_price: Any) -> TierTable:
    keys = ("input_mtok", "cache_read_mtok", "cache_write_mtok", "output_mtok", "output_reasoning_mtok")
    values = [getattr(model_price, key, None) for key in keys]
    if values[2] is None:  # a model priced per cache duration only: the 5-minute write is the default
        values[2] = getattr(model_price, "cache_write_5m_mtok", None)
    starts = sorted({tier.start for value in values if value is not None for tier in getattr(value, "tiers", ())})
    table_starts, table_rates = [-1], []
    for start in [None, *starts]:
        prices = [_mtok(value, start) for value in values]
        table_rates.append(Rates.from_mtok(prices[0] or Decimal(0), prices[1], prices[2], prices[3] or Decimal(0),
                                           prices[4]))
        if start is not None:
            table_starts.append(start)
    return TierTable(tuple(table_starts), tuple(table_rates))


def _day_ns(day: date) -> int:
    return (day - _EPOCH).days * DAY_NS


def _library_schedule(provider: Any, model: Any) -> tuple[list[Period], Any]:
    _, _, types = _library()
    ref = f"{library_version()} {provider.id}/{model.id}"
    if isinstance(model.prices, types.ModelPrice):
        return [Period(0, _tier_table(model.prices), "computed", ref, None)], None
    periods: list[Period] = []
    time_of_day = None
    for conditional in model.prices:
        constraint = conditional.constraint
        if constraint is None:
            periods.append(Period(0, _tier_table(conditional.prices), "computed", ref, None))
        elif isinstance(constraint, types.StartDateConstraint):
            periods.append(Period(_day_ns(constraint.start_date), _tier_table(conditional.prices), "computed", ref,
                                  constraint.start_date.isoformat()))
        else:  # a daily off-peak window: asked of the library per call
            time_of_day = model
    periods.sort(key=lambda period: period.start_ns)  # stable: of equal starts the later entry wins, as in the library
    return periods, time_of_day


def _has_token_prices(model: Any) -> bool:
    """Whether the library prices the model's text tokens at all (not only audio hours, images, requests)."""
    prices = [model.prices] if not isinstance(model.prices, list) else [c.prices for c in model.prices]
    return any(getattr(p, "input_mtok", None) is not None or getattr(p, "output_mtok", None) is not None for p in prices)


_TIME_OF_DAY_TABLES: dict[int, TierTable] = {}


def _time_of_day_period(model: Any, start_ns: int, ref: str) -> Period:
    moment = datetime.fromtimestamp(start_ns / 1e9, tz=timezone.utc)
    model_price = model.get_prices(moment)
    table = _TIME_OF_DAY_TABLES.get(id(model_price))
    if table is None:
        table = _TIME_OF_DAY_TABLES[id(model_price)] = _tier_table(model_price)
    return Period(0, table, "computed", ref, None)


def normalise_model(model: str) -> str:
    name = model.strip().lower()
    if name.startswith("models/"):
        name = name[len("models/"):]
    return name


def _library_lookup(provider: str | None, model: str) -> tuple[Any, Any] | None:
    _, data_snapshot, _ = _library()
    snapshot = data_snapshot.get_snapshot()
    name = normalise_model(model)
    candidates = [name]
    if "/" in name:
        candidates.append(name.rsplit("/", 1)[-1])
    bare = _VERSION_SUFFIX.sub("", _HOST_PREFIX.sub("", candidates[-1]))
    if bare != candidates[-1]:
        candidates.append(bare)
    provider_id = PROVIDER_IDS.get(provider or "", provider) if provider else None
    for ref in candidates:
        for pid in ([provider_id, None] if provider_id else [None]):
            try:
                return snapshot.find_provider_model(ref, None, pid, None)
            except LookupError:
                continue
    return None


# --- PRICING_FILE ---------------------------------------------------------------------------

@dataclass(frozen=True)
class UserPrice:
    pattern: str
    provider: str | None
    effective_from: date | None
    tiers: TierTable
    matcher: re.Pattern[str]
    index: int


def _number(entry: dict[str, Any], key: str, where: str, required: bool = False) -> Decimal | None:
    raw = entry.get(key)
    if raw is None:
        if required:
            raise ValueError(f"{where}: missing {key!r} (USD per 1M tokens)")
        return None
    if isinstance(raw, bool) or not isinstance(raw, (int, float, str)):
        raise ValueError(f"{where}: {key!r} must be a number (USD per 1M tokens), got {raw!r}")
    try:
        value = Decimal(str(raw))
    except InvalidOperation:
        raise ValueError(f"{where}: {key!r} must be a number (USD per 1M tokens), got {raw!r}") from None
    if not value.is_finite() or value < 0:
        raise ValueError(f"{where}: {key!r} must be a non-negative number, got {raw!r}")
    return value


_PRICE_KEYS = ("input", "cache_read", "cache_write", "output", "reasoning")
_ENTRY_KEYS = {"pattern", "provider", "effective_from", "tiers", *_PRICE_KEYS}


def _rates(entry: dict[str, Any], where: str) -> Rates:
    values = [_number(entry, key, where, required=key in ("input", "output")) for key in _PRICE_KEYS]
    return Rates.from_mtok(*values)  # type: ignore[arg-type]


def _user_price(entry: Any, index: int) -> UserPrice:
    where = f"models[{index}]"
    if not isinstance(entry, dict) or not isinstance(entry.get("pattern"), str) or not entry["pattern"].strip():
        raise ValueError(f"{where}: needs a non-empty string 'pattern'")
    where = f"{where} ({entry['pattern']})"
    unknown = set(entry) - _ENTRY_KEYS
    if unknown:
        raise ValueError(f"{where}: unknown field(s) {', '.join(sorted(unknown))}; known: {', '.join(sorted(_ENTRY_KEYS))}")
    effective = entry.get("effective_from")
    day = None
    if effective is not None:
        try:
            day = date.fromisoformat(str(effective))
        except ValueError:
            raise ValueError(f"{where}: 'effective_from' must be a date YYYY-MM-DD, got {effective!r}") from None
    provider = entry.get("provider")
    if provider is not None and not isinstance(provider, str):
        raise ValueError(f"{where}: 'provider' must be a string")
    base = _rates(entry, where)
    starts, rates = [-1], [base]
    tiers = entry.get("tiers") or []
    if not isinstance(tiers, list):
        raise ValueError(f"{where}: 'tiers' must be a list of {{\"above_input_tokens\": N, ...prices}}")
    for number, tier in enumerate(tiers):
        tier_where = f"{where} tiers[{number}]"
        threshold = tier.get("above_input_tokens") if isinstance(tier, dict) else None
        if isinstance(threshold, bool) or not isinstance(threshold, int) or threshold < 0 or threshold <= starts[-1]:
            raise ValueError(f"{tier_where}: needs 'above_input_tokens', a whole number above the previous tier's")
        starts.append(threshold)
        # A tier names the prices that change; the others are the entry's own (and an omitted
        # cache or reasoning price still falls back to the tier's input or output price).
        prices = {key: entry[key] for key in _PRICE_KEYS if key in entry}
        prices.update({key: value for key, value in tier.items() if key != "above_input_tokens"})
        unknown = set(prices) - set(_PRICE_KEYS)
        if unknown:
            raise ValueError(f"{tier_where}: unknown field(s) {', '.join(sorted(unknown))}")
        rates.append(_rates(prices, tier_where))
    return UserPrice(entry["pattern"].strip(), provider.lower() if provider else None, day,
                     TierTable(tuple(starts), tuple(rates)),
                     re.compile(fnmatch.translate(normalise_model(entry["pattern"]))), index)


@dataclass(frozen=True)
class UserPrices:
    models: tuple[UserPrice, ...] = ()
    beside_scopes: frozenset[str] = frozenset()
    label: str = ""

    def matching(self, provider: str | None, model: str) -> list[UserPrice]:
        name = normalise_model(model)
        bare = name.rsplit("/", 1)[-1]
        return [entry for entry in self.models
                if (entry.matcher.match(name) or entry.matcher.match(bare))
                and (entry.provider is None or entry.provider == (provider or ""))]


def parse_user_prices(document: Any, label: str = "PRICING_FILE") -> UserPrices:
    if not isinstance(document, dict) or not isinstance(document.get("models", []), list):
        raise ValueError("must be a JSON object with a 'models' list")
    unknown = set(document) - {"models", "cache_beside_input_scopes", "note", "version", "currency", "unit"}
    if unknown:
        raise ValueError(f"unknown top-level field(s) {', '.join(sorted(unknown))}")
    if document.get("currency", "USD") != "USD" or document.get("unit", "per 1M tokens") != "per 1M tokens":
        raise ValueError("prices must be in USD per 1M tokens ('currency': 'USD', 'unit': 'per 1M tokens')")
    scopes = document.get("cache_beside_input_scopes", [])
    if not isinstance(scopes, list) or not all(isinstance(s, str) for s in scopes):
        raise ValueError("'cache_beside_input_scopes' must be a list of instrumentation scope names")
    models = tuple(_user_price(entry, index) for index, entry in enumerate(document.get("models", [])))
    return UserPrices(models, frozenset(scopes), label)


def load_user_prices(path: str | None) -> UserPrices:
    """The PRICING_FILE layer; a bad file is a SettingsError: one line naming the problem."""
    if not path:
        return UserPrices()
    try:
        text = Path(path).read_text()
    except OSError as exc:
        raise SettingsError(f"PRICING_FILE={path!r} cannot be read: {exc.strerror}") from None
    try:
        document = json.loads(text)
    except json.JSONDecodeError as exc:
        raise SettingsError(f"PRICING_FILE={path!r} is not JSON: {exc.msg} at line {exc.lineno} column {exc.colno}") from None
    try:
        return parse_user_prices(document, f"PRICING_FILE {Path(path).name}")
    except ValueError as exc:
        raise SettingsError(f"PRICING_FILE={path!r}: {exc}") from None


# --- the two layers together -----------------------------------------------------------------

MODEL_CACHE_LIMIT = 10_000  # model names are client-chosen: bound the cache
_MISSING = object()


@dataclass
class PriceBook:
    """Prices by (provider, model): PRICING_FILE entries over genai-prices, each model's
    schedule built once."""

    user: UserPrices = field(default_factory=UserPrices)
    _schedules: dict[tuple[str | None, str], Schedule | None] = field(default_factory=dict)

    @property
    def beside_scopes(self) -> frozenset[str]:
        return self.user.beside_scopes

    def schedule(self, provider: str | None, model: str) -> Schedule | None:
        key = (provider, model)
        try:
            return self._schedules[key]
        except KeyError:
            pass
        schedule = self._build(provider, model)
        if len(self._schedules) < MODEL_CACHE_LIMIT:
            self._schedules[key] = schedule
        return schedule

    def period(self, provider: str | None, response_model: str | None, request_model: str | None,
               start_ns: int) -> Period | None:
        """The price in force at `start_ns` of the response model (the exact snapshot), else the request model."""
        schedules = self._schedules
        if response_model:
            schedule = schedules.get((provider, response_model), _MISSING)
            if schedule is _MISSING:
                schedule = self.schedule(provider, response_model)
            if schedule is not None:
                return schedule.at(start_ns)  # type: ignore[union-attr]
        if request_model and request_model != response_model:
            schedule = self.schedule(provider, request_model)
            if schedule is not None:
                return schedule.at(start_ns)
        return None

    def _build(self, provider: str | None, model: str) -> Schedule | None:
        periods: list[Period] = []
        time_of_day, library_ref = None, ""
        found = _library_lookup(provider, model)
        if found is not None and _has_token_prices(found[1]):
            periods, time_of_day = _library_schedule(*found)
            library_ref = periods[0].ref if periods else ""
        entries = self.user.matching(provider, model)
        if entries:
            # The first matching pattern in the file decides; its entries (same pattern, each
            # with its effective_from) are its price history. User prices win from their date on.
            chosen = [e for e in entries if e.pattern == entries[0].pattern]
            chosen.sort(key=lambda e: (e.effective_from or date.min, e.index))
            first = _day_ns(chosen[0].effective_from) if chosen[0].effective_from else 0
            periods = [p for p in periods if p.start_ns < first]
            for entry in chosen:
                start = _day_ns(entry.effective_from) if entry.effective_from else 0
                periods.append(Period(start, entry.tiers, "override", f"{self.user.label} {entry.pattern}",
                                      entry.effective_from.isoformat() if entry.effective_from else None))
        if not periods:
            return None
        periods.sort(key=lambda p: p.start_ns)  # before the first price's date, the earliest applies (Schedule.at)
        return Schedule(tuple(p.start_ns for p in periods), tuple(periods), time_of_day, library_ref)


def load_price_book(pricing_file: str | None) -> PriceBook:
    """genai-prices' bundled data (read now, no network) with PRICING_FILE on top."""
    book = PriceBook(load_user_prices(pricing_file))
    _, data_snapshot, _ = _library()
    data_snapshot.get_snapshot()  # load the data at start, not on the first span
    return book
