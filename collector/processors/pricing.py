"""The pricing table: list prices per 1M tokens, models matched by glob pattern.

The table ships as collector/pricing.json; PRICING_FILE replaces it whole. It is read and
validated once at start, so a bad file stops the collector with a message naming the entry
instead of pricing spans wrongly. See docs/COLLECTOR_PROCESSING.md for the format.
"""

from __future__ import annotations

import fnmatch
import json
import re
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from importlib import resources
from pathlib import Path
from typing import Any

CONVENTIONS = ("included", "separate")
PER_TOKEN = Decimal(1_000_000)
# Hosting prefixes that name where a model runs, not which model it is:
# "models/gemini-2.5-pro", "us.anthropic.claude-sonnet-4-5-20250929-v1:0", "meta.llama3-3-70b-instruct-v1:0".
_HOST_PREFIX = re.compile(r"^(?:[a-z]{2,4}\.)?(?:anthropic|meta|mistral|cohere|amazon|deepseek|google|openai)\.")


@dataclass(frozen=True)
class ModelPrice:
    provider: str
    pattern: str
    input: Decimal  # USD per token (the file says per 1M tokens)
    output: Decimal
    cache_read: Decimal
    cache_write: Decimal
    matcher: re.Pattern[str]


@dataclass(frozen=True)
class PricingTable:
    models: tuple[ModelPrice, ...]
    conventions: dict[str, str]  # provider → "included" | "separate"
    default_convention: str

    def price(self, model: str) -> ModelPrice | None:
        name = normalise_model(model)
        for entry in self.models:
            if entry.matcher.match(name):
                return entry
        return None

    def convention(self, span_provider: str | None, entry: ModelPrice) -> str:
        """How the span counted cached tokens: the API it called decides, else the model's maker."""
        if span_provider and span_provider.lower() in self.conventions:
            return self.conventions[span_provider.lower()]
        return self.conventions.get(entry.provider, self.default_convention)


def normalise_model(model: str) -> str:
    name = model.strip().lower().rsplit("/", 1)[-1]
    return _HOST_PREFIX.sub("", name)


def _price(entry: dict[str, Any], field: str, where: str, default: Decimal | None = None) -> Decimal:
    raw = entry.get(field)
    if raw is None:
        if default is None:
            raise ValueError(f"{where}: missing {field!r}")
        return default
    if isinstance(raw, bool) or not isinstance(raw, (int, float, str)):
        raise ValueError(f"{where}: {field!r} must be a number, got {raw!r}")
    try:
        value = Decimal(str(raw))
    except InvalidOperation:
        raise ValueError(f"{where}: {field!r} must be a number, got {raw!r}") from None
    if not value.is_finite() or value < 0:
        raise ValueError(f"{where}: {field!r} must be a non-negative number, got {raw!r}")
    return value / PER_TOKEN


def _model(entry: Any, index: int) -> ModelPrice:
    where = f"models[{index}]"
    if not isinstance(entry, dict) or not isinstance(entry.get("pattern"), str) or not entry["pattern"]:
        raise ValueError(f"{where}: needs a non-empty string 'pattern'")
    where = f"{where} ({entry['pattern']})"
    input_price = _price(entry, "input", where)
    return ModelPrice(
        provider=str(entry.get("provider", "")).lower(),
        pattern=entry["pattern"],
        input=input_price,
        output=_price(entry, "output", where, Decimal(0)),
        cache_read=_price(entry, "cache_read", where, input_price * PER_TOKEN),
        cache_write=_price(entry, "cache_write", where, input_price * PER_TOKEN),
        matcher=re.compile(fnmatch.translate(entry["pattern"].lower())),
    )


def parse_pricing(document: Any) -> PricingTable:
    if not isinstance(document, dict) or not isinstance(document.get("models"), list):
        raise ValueError("pricing file must be a JSON object with a 'models' list")
    default = document.get("default_cached_input", "included")
    conventions: dict[str, str] = {}
    for provider, rules in (document.get("providers") or {}).items():
        convention = rules.get("cached_input") if isinstance(rules, dict) else None
        if convention not in CONVENTIONS:
            raise ValueError(f"providers.{provider}.cached_input must be one of {', '.join(CONVENTIONS)}, got {convention!r}")
        conventions[provider.lower()] = convention
    if default not in CONVENTIONS:
        raise ValueError(f"default_cached_input must be one of {', '.join(CONVENTIONS)}, got {default!r}")
    models = tuple(_model(entry, index) for index, entry in enumerate(document["models"]))
    return PricingTable(models, conventions, default)


def load_pricing(path: str | None) -> PricingTable:
    """The shipped table, or the file at `path` (PRICING_FILE) instead of it."""
    if path:
        try:
            text = Path(path).read_text()
        except OSError as exc:
            raise ValueError(f"PRICING_FILE={path!r} cannot be read: {exc.strerror}") from None
        source = f"PRICING_FILE={path!r}"
    else:
        text = resources.files("collector").joinpath("pricing.json").read_text()
        source = "collector/pricing.json"
    try:
        return parse_pricing(json.loads(text))
    except (ValueError, json.JSONDecodeError) as exc:
        raise ValueError(f"{source}: {exc}") from None
