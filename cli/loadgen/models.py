"""The LLM models generated spans name: from the pricing table when one is there, so the
collector can price every call, else a built-in list of current models."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class Model:
    provider: str        # gen_ai.provider.name
    request: str         # gen_ai.request.model
    response: str        # gen_ai.response.model (providers answer with a dated snapshot)
    embedding: bool = False


BUILT_IN = (
    Model("openai", "gpt-4o", "gpt-4o-2024-08-06"),
    Model("openai", "gpt-4o-mini", "gpt-4o-mini-2024-07-18"),
    Model("openai", "gpt-4.1", "gpt-4.1-2025-04-14"),
    Model("openai", "o3-mini", "o3-mini-2025-01-31"),
    Model("anthropic", "claude-sonnet-4-5", "claude-sonnet-4-5-20250929"),
    Model("anthropic", "claude-3-5-haiku-latest", "claude-3-5-haiku-20241022"),
    Model("gcp.gemini", "gemini-2.5-flash", "gemini-2.5-flash"),
    Model("gcp.gemini", "gemini-2.5-pro", "gemini-2.5-pro"),
    Model("mistral_ai", "mistral-large-latest", "mistral-large-2411"),
    Model("openai", "text-embedding-3-small", "text-embedding-3-small", embedding=True),
)

_PLAIN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:/-]*$")  # a literal name, not a pattern


def _entries(document: Any) -> list[dict[str, Any]]:
    if isinstance(document, dict):
        for key in ("models", "prices", "pricing"):
            if isinstance(document.get(key), list):
                return [e for e in document[key] if isinstance(e, dict)]
        return [{"model": k, **v} for k, v in document.items() if isinstance(v, dict)]
    if isinstance(document, list):
        return [e for e in document if isinstance(e, dict)]
    return []


def from_pricing(path: Path) -> tuple[Model, ...]:
    """The literal model names of a JSON pricing table (regex patterns are skipped).

    The table's exact layout belongs to the collector; this reads any list of entries
    with a `model`, `name` or `pattern` and an optional `provider`, and returns () when
    the file is absent or holds none.
    """
    try:
        document = json.loads(path.read_text())
    except (OSError, ValueError):
        return ()
    models = []
    for entry in _entries(document):
        name = entry.get("model") or entry.get("name") or entry.get("pattern")
        if not isinstance(name, str) or not _PLAIN.match(name):
            continue
        provider = entry.get("provider") or _guess_provider(name)
        models.append(Model(str(provider), name, name, embedding="embed" in name))
    return tuple(models)


def _guess_provider(name: str) -> str:
    for prefix, provider in (("gpt", "openai"), ("o1", "openai"), ("o3", "openai"), ("o4", "openai"),
                             ("text-embedding", "openai"), ("claude", "anthropic"), ("gemini", "gcp.gemini"),
                             ("mistral", "mistral_ai"), ("command", "cohere")):
        if name.startswith(prefix):
            return provider
    return "openai"


def choose(pricing_files: tuple[Path, ...]) -> tuple[tuple[Model, ...], str]:
    """(chat models plus at least one embedding model, where they came from)."""
    for path in pricing_files:
        models = from_pricing(path)
        chat = tuple(m for m in models if not m.embedding)
        if chat:
            embedding = tuple(m for m in models if m.embedding) or tuple(m for m in BUILT_IN if m.embedding)
            return chat + embedding, str(path)
    return BUILT_IN, "built-in list"
