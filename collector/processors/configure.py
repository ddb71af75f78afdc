"""CollectorSettings → the processors' configs, checked once at start with messages naming the variable.

`stages(settings)` is the one place every stage's configuration is read and checked: each
problem is a SettingsError, which the entry point prints as one line (exit 2) before any
port is opened, whichever stage (or file: PRICING_FILE, REDACTION_PATTERNS_FILE) it is in.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path

from collector.processors.pricing import PriceBook, load_price_book
from collector.processors.redaction import DEFAULT_BLOCKED_KEYS, RedactionConfig, Redactor
from collector.processors.sampling import HeadSamplingConfig
from collector.processors.validation import Limits
from collector.processors.tail_sampling import TailSamplingConfig
from collector.settings import CollectorSettings
from common.settings import SettingsError


def _pairs(variable: str, items: tuple[str, ...], separator: str) -> dict[str, str]:
    pairs: dict[str, str] = {}
    for item in items:
        name, sep, value = item.rpartition(separator)
        if not sep or not name.strip() or not value.strip():
            raise SettingsError(f"{variable} entries must look like name{separator}value, got {item!r}")
        pairs[name.strip()] = value.strip()
    return pairs


def _percent(variable: str, raw: str) -> float:
    try:
        value = float(raw)
    except ValueError:
        raise SettingsError(f"{variable} percentages must be numbers, got {raw!r}") from None
    if not 0 <= value <= 100:
        raise SettingsError(f"{variable} percentages must be between 0 and 100, got {raw!r}")
    return value


def _regexes(variable: str, patterns: tuple[str, ...]) -> tuple[str, ...]:
    for pattern in patterns:
        try:
            re.compile(pattern)
        except re.error as exc:
            raise SettingsError(f"{variable} has an invalid regular expression {pattern!r}: {exc}") from None
    return patterns


def head_sampling(settings: CollectorSettings) -> HeadSamplingConfig:
    _percent("SAMPLING_PERCENTAGE", str(settings.sampling_percentage))
    services = _pairs("SAMPLING_SERVICE_PERCENTAGES", settings.sampling_service_percentages, "=")
    return HeadSamplingConfig(
        percentage=settings.sampling_percentage, mode=settings.sampling_mode, hash_seed=settings.sampling_hash_seed,
        service_percentages={k: _percent("SAMPLING_SERVICE_PERCENTAGES", v) for k, v in services.items()},
    )


def tail_sampling(settings: CollectorSettings) -> TailSamplingConfig:
    _percent("TAIL_PERCENTAGE", str(settings.tail_percentage))
    return TailSamplingConfig(
        decision_wait=settings.tail_decision_wait, max_traces=settings.tail_max_traces, max_bytes=settings.tail_max_bytes,
        latency_ms=settings.tail_latency_ms, cost_usd=settings.tail_cost_usd, keep_services=_regexes("TAIL_KEEP_SERVICES", settings.tail_keep_services),
        keep_span_names=_regexes("TAIL_KEEP_SPAN_NAMES", settings.tail_keep_span_names), keep_attributes=settings.tail_keep_attributes,
        percentage=settings.tail_percentage, hash_seed=settings.sampling_hash_seed,
        shutdown_timeout=settings.shutdown_timeout / 2,
    )


def _custom_patterns(path: str | None) -> dict[str, str]:
    if not path:
        return {}
    try:
        document = json.loads(Path(path).read_text())
    except OSError as exc:
        raise SettingsError(f"REDACTION_PATTERNS_FILE={path!r} cannot be read: {exc.strerror}") from None
    except json.JSONDecodeError as exc:
        raise SettingsError(f"REDACTION_PATTERNS_FILE={path!r} is not JSON: {exc}") from None
    if not isinstance(document, dict) or not all(isinstance(v, str) for v in document.values()):
        raise SettingsError(f"REDACTION_PATTERNS_FILE={path!r} must be a JSON object of name → regex strings")
    return document


def redaction(settings: CollectorSettings) -> RedactionConfig:
    return RedactionConfig(
        detectors=settings.redaction_detectors,
        custom_patterns=_custom_patterns(settings.redaction_patterns_file),
        strategy=settings.redaction_strategy,
        strategies=_pairs("REDACTION_RULE_STRATEGIES", settings.redaction_rule_strategies, ":"),
        hash_key=settings.redaction_hash_key.encode(),
        blocked_keys=DEFAULT_BLOCKED_KEYS + _regexes("REDACTION_BLOCKED_KEYS", settings.redaction_blocked_keys),
        ignored_keys=settings.redaction_ignored_keys,
        drop_llm_content=settings.redaction_drop_llm_content,
        summary=settings.redaction_summary,
        keep_private_ips=settings.redaction_keep_private_ips,
        work_limit=settings.redaction_work_limit,
    )


@dataclass(frozen=True)
class Stages:
    """Every switched-on stage's checked configuration (None: the stage is off)."""

    limits: Limits
    head_sampling: HeadSamplingConfig | None
    redactor: Redactor | None  # built here: its constructor is where patterns and strategies are checked
    pricing: PriceBook | None
    tail_sampling: TailSamplingConfig | None


def stages(settings: CollectorSettings) -> Stages:
    """Read and check the configuration of every stage; raises SettingsError naming the variable."""
    try:
        return Stages(
            limits=Limits(future_window_s=settings.future_span_window),
            head_sampling=head_sampling(settings) if settings.enable_sampling else None,
            redactor=Redactor(redaction(settings)) if settings.enable_pii_detection else None,
            pricing=load_price_book(settings.pricing_file) if settings.enable_cost_calculation else None,
            tail_sampling=tail_sampling(settings) if settings.tail_sampling else None,
        )
    except SettingsError:
        raise
    except ValueError as exc:  # the stages' own checks: their messages name the variable or file
        raise SettingsError(str(exc)) from None
