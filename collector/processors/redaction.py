"""PII redaction, in place on the protobuf messages, before anything reaches the stream.

Covers resource, scope, span, event and link attributes (arrays and key-value lists at any
depth), span status messages, and so the LLM prompt/completion content that instrumentations
put in attributes or events. Key rules come first (ignored keys pass untouched, blocked keys
are redacted whole, LLM content keys can be dropped), then every remaining string is scanned
by one combined pattern (collector/processors/detectors.py), and integers or integral doubles
with the length of a card number are Luhn-checked (the Collector's redaction processor misses
card numbers sent as numbers).

Cheap skips keep this fast: the key → rule decision is cached, strings shorter than the
shortest possible match are not scanned, and a value is rewritten only when a detector's
check confirms a match.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import re2
from opentelemetry.proto.common.v1.common_pb2 import AnyValue

from collector import metrics
from collector.pipeline import SpanBatch
from collector.processors import detectors
from common import genai

STRATEGIES = ("mask", "hash", "remove")
SUMMARY_LEVELS = ("debug", "info", "silent")
KEY_RULE = "key"  # the name blocked-key redactions carry in masks and metrics
CONTENT_RULE = "llm_content"

DEFAULT_BLOCKED_KEYS = (
    r"(^|[._-])(password|passwd|pwd|passphrase|secret|client[._-]?secret)($|[._-])",
    r"(^|[._-])((access|refresh|id|session|auth|bearer|api)[._-]?)?token$",
    r"(^|[._-])(authorization|proxy[._-]authorization|cookie|set[._-]cookie|credentials?)($|[._-])",
    r"(^|[._-])(api[._-]?key|access[._-]?key|private[._-]?key|secret[._-]?key)($|[._-])",
    r"(^|[._-])(user|enduser)\.email$",
    r"(^|[._-])(ssn|social[._-]security[._-]number|credit[._-]?card|card[._-]number)($|[._-])",
)

# Token counts, model names and costs carry no PII; passing them untouched also keeps
# "token" in llm.token_count.* from tripping the blocked-key rules.
DEFAULT_IGNORED_KEYS = tuple(sorted(genai.ALL_KEYS)) + (
    "service.name", "service.version", "service.namespace", "service.instance.id",
    "telemetry.sdk.name", "telemetry.sdk.language", "telemetry.sdk.version",
    "deployment.environment", "deployment.environment.name", "gen_ai.response.id",
    "gen_ai.response.finish_reasons", "gen_ai.request.temperature", "gen_ai.request.max_tokens",
)

# Where instrumentations put prompts and completions (GenAI, older GenAI, OpenInference).
LLM_CONTENT_KEYS = frozenset({
    "gen_ai.input.messages", "gen_ai.output.messages", "gen_ai.system_instructions",
    "gen_ai.prompt", "gen_ai.completion", "gen_ai.tool.call.arguments", "gen_ai.tool.call.result",
    "input.value", "output.value", "llm.prompts", "llm.input_messages", "llm.output_messages",
})
LLM_CONTENT_PREFIXES = ("gen_ai.prompt.", "gen_ai.completion.", "llm.input_messages.", "llm.output_messages.", "llm.prompts.")

IGNORE, BLOCK, DROP, SCAN = range(4)
KEY_CACHE_LIMIT = 10_000  # keys are client-chosen: cap the cache so it cannot grow without end
MIN_SCAN_LENGTH = 6  # the shortest value a built-in detector can match ("a@b.io")


@dataclass(frozen=True)
class RedactionConfig:
    detectors: tuple[str, ...] = detectors.BUILTIN_NAMES
    custom_patterns: dict[str, str] = field(default_factory=dict)
    strategy: str = "mask"
    strategies: dict[str, str] = field(default_factory=dict)  # rule name → strategy
    hash_key: bytes = b""
    blocked_keys: tuple[str, ...] = DEFAULT_BLOCKED_KEYS
    ignored_keys: tuple[str, ...] = DEFAULT_IGNORED_KEYS
    drop_llm_content: bool = False
    summary: str = "debug"  # debug: counts and keys; info: counts; silent: nothing (the Collector's levels)


class Tally:
    """What redaction changed in one span (or one resource): the summary attributes.

    Named as the Collector's redaction processor names them: "masked" values were replaced
    in place (mask or hash), "redacted" attributes were deleted (remove). One is made per
    span and most spans have nothing to report, so the containers are made on first use.
    """

    __slots__ = ("masked", "masked_count", "redacted", "redacted_count", "rules")

    def __init__(self) -> None:
        self.masked: set[str] = set()
        self.redacted: set[str] = set()
        self.masked_count = self.redacted_count = 0
        self.rules: Counter[str] | None = None

    def add(self, rule: str, key: str, strategy: str) -> None:
        if strategy == "remove":
            self.redacted_count += 1
            self.redacted.add(key)
        else:
            self.masked_count += 1
            self.masked.add(key)
        if self.rules is None:
            self.rules = Counter()
        self.rules[rule] += 1


def candidate_test(engine: Any, chosen: list[detectors.Detector]) -> Callable[[str], bool]:
    """Does anything in a text look like PII? The question asked of every string value.

    With RE2 this calls its C binding directly: the google-re2 wrapper's Python code around
    each search (offset bookkeeping for match objects nobody needs here) cost several times
    the scan itself in bench/processors. The rewrite after a hit uses the public API.
    """
    pattern = "|".join(f"(?:{d.pattern})" for d in chosen) or "$^"
    try:
        from re2 import _re2  # noqa: PLC0415 - the optional fast path

        regexp = _re2.RE2(pattern.encode(), engine.Options())
        anchor, miss = engine._Anchor.UNANCHORED, (-1, -1)
    except (ImportError, AttributeError):
        compiled = engine.compile(pattern)
        return lambda text: compiled.search(text) is not None

    def test(text: str) -> bool:
        encoded = text.encode()
        return regexp.Match(anchor, encoded, 0, len(encoded))[0] != miss

    return test


class _Remove(Exception):
    """A value ruled for removal: the attribute holding it is deleted."""


class Redactor:
    name = "redaction"

    def __init__(self, config: RedactionConfig, engine: Any = re2) -> None:
        """`engine` is a module with re's compile(): RE2 in production, others in bench/processors."""
        if config.summary not in SUMMARY_LEVELS:
            raise ValueError(f"REDACTION_SUMMARY must be one of {', '.join(SUMMARY_LEVELS)}, got {config.summary!r}")
        for rule, strategy in {"default": config.strategy, **config.strategies}.items():
            if strategy not in STRATEGIES:
                raise ValueError(f"redaction strategy for {rule!r} must be one of {', '.join(STRATEGIES)}, got {strategy!r}")
        if "hash" in (config.strategy, *config.strategies.values()) and len(config.hash_key) < 16:
            raise ValueError("hash redaction needs REDACTION_HASH_KEY of at least 16 characters (a secret salt)")
        self.config = config
        chosen = detectors.select(config.detectors, config.custom_patterns)
        unknown = set(config.strategies) - {d.name for d in chosen} - {KEY_RULE}
        if unknown:  # a typo ("emial:hash") would otherwise leave emails masked, silently
            raise ValueError(f"REDACTION_RULE_STRATEGIES names unknown rule(s) {', '.join(sorted(unknown))}")
        self.checks = {d.name: d.check for d in chosen}
        try:
            self.pattern = engine.compile(detectors.combined_pattern(chosen)) if chosen else None
            self.candidate = candidate_test(engine, chosen)
        except Exception as exc:  # re2.error is not re.error: custom patterns checked by re can still fail here
            raise ValueError(f"redaction patterns must be RE2 syntax (no look-around or back-references): {exc}") from None
        self.min_length = MIN_SCAN_LENGTH if not config.custom_patterns else 1
        self.scan_cards = "card" in self.checks
        self.blocked = [re.compile(p, re.IGNORECASE) for p in config.blocked_keys]
        self.ignored = frozenset(k for k in config.ignored_keys if not k.endswith("*"))
        self.ignored_prefixes = tuple(k[:-1] for k in config.ignored_keys if k.endswith("*"))
        self._key_actions: dict[str, int] = {}

    # -- the stage -------------------------------------------------------------------------

    def process(self, batch: SpanBatch) -> SpanBatch:
        for resource_spans in batch.request.resource_spans:
            resource_tally = Tally()
            self._attributes(resource_spans.resource.attributes, resource_tally)
            for scope_spans in resource_spans.scope_spans:
                self._attributes(scope_spans.scope.attributes, resource_tally)
                for span in scope_spans.spans:
                    self._span(span)
            self._summarise(resource_spans.resource.attributes, resource_tally)
        return batch

    def _span(self, span: Any) -> None:
        if self._clean(span):
            return
        tally = Tally()
        self._attributes(span.attributes, tally)
        for event in span.events:
            self._attributes(event.attributes, tally)
        for link in span.links:
            self._attributes(link.attributes, tally)
        message = span.status.message
        if len(message) >= self.min_length:
            try:
                redacted = self._text(message, "status.message", tally)
            except _Remove:
                redacted = ""
            if redacted is not None:
                span.status.message = redacted
        self._summarise(span.attributes, tally)

    # -- the survey: most spans hold no PII, and proving it costs one scan --------------------

    def _clean(self, span: Any) -> bool:
        """True when nothing in the span can need redaction.

        One pass that only reads: key rules and card-sized numbers answer at once, and the
        strings to scan are joined with newlines (each value's edges stay word boundaries, so
        every candidate inside a value is still found; one straddling two values only costs
        the full pass) for a single candidate test instead of one per value. Spans it cannot
        clear take the full pass, which tests value by value.
        """
        texts: list[str] = []
        if self._needs_work(span.attributes, texts):
            return False
        for event in span.events:
            if self._needs_work(event.attributes, texts):
                return False
        for link in span.links:
            if self._needs_work(link.attributes, texts):
                return False
        texts.append(span.status.message)
        return not self.candidate("\n".join(texts))

    def _needs_work(self, attributes: Any, texts: list[str]) -> bool:
        for kv in attributes:
            action = self._key_actions.get(kv.key)
            if action is None:
                action = self._key_action(kv.key)
            if action != IGNORE and (action != SCAN or self._survey(kv.value, texts)):
                return True
        return False

    def _survey(self, value: AnyValue, texts: list[str]) -> bool:
        text = value.string_value
        if text:
            texts.append(text)
            return False
        number = value.int_value
        if number:
            return self.scan_cards and (number >= 10**12 or number <= -(10**12))
        kind = value.WhichOneof("value")
        if kind == "double_value":
            return self.scan_cards and abs(value.double_value) >= 1e12
        if kind == "array_value":
            return any(self._survey(item, texts) for item in value.array_value.values)
        if kind == "kvlist_value":
            return self._needs_work(value.kvlist_value.values, texts)
        return False

    def _summarise(self, attributes: Any, tally: Tally) -> None:
        if tally.rules is None:
            return
        for rule, count in tally.rules.items():
            metrics.REDACTIONS.labels(rule).inc(count)
        if self.config.summary == "silent":
            return
        for kind, count, keys in (("masked", tally.masked_count, tally.masked), ("redacted", tally.redacted_count, tally.redacted)):
            if count:
                attributes.add(key=f"redaction.{kind}.count").value.int_value = count
                if self.config.summary == "debug":
                    attributes.add(key=f"redaction.{kind}.keys").value.string_value = ",".join(sorted(keys))

    # -- attributes ------------------------------------------------------------------------

    def _attributes(self, attributes: Any, tally: Tally) -> None:
        doomed: list[int] = []
        for index, kv in enumerate(attributes):
            key = kv.key
            action = self._key_actions.get(key)
            if action is None:
                action = self._key_action(key)
            if action == IGNORE:
                continue
            try:
                if action == SCAN:
                    self._value(kv.value, key, tally)
                elif action == BLOCK:
                    self._block(kv.value, key, tally)
                else:
                    tally.add(CONTENT_RULE, key, "remove")
                    raise _Remove
            except _Remove:
                doomed.append(index)
        for index in reversed(doomed):  # deleting while iterating would skip the next attribute
            del attributes[index]

    def _key_action(self, key: str) -> int:
        if key in self.ignored or key.startswith(self.ignored_prefixes):
            action = IGNORE
        elif self.config.drop_llm_content and (key in LLM_CONTENT_KEYS or key.startswith(LLM_CONTENT_PREFIXES)):
            action = DROP
        elif any(p.search(key) for p in self.blocked):
            action = BLOCK
        else:
            action = SCAN
        if len(self._key_actions) < KEY_CACHE_LIMIT:
            self._key_actions[key] = action
        return action

    def _block(self, value: AnyValue, key: str, tally: Tally) -> None:
        if value.WhichOneof("value") is None:
            return  # an empty value reveals nothing
        strategy = self._strategy(KEY_RULE)
        tally.add(KEY_RULE, key, strategy)
        if strategy == "remove":
            raise _Remove
        # A string is hashed as the detectors hash it, so a value correlates wherever it appears.
        original = value.string_value.encode() if value.WhichOneof("value") == "string_value" else value.SerializeToString()
        value.string_value = self._replacement(KEY_RULE, original, strategy)

    def _value(self, value: AnyValue, key: str, tally: Tally) -> None:
        # Reading the field is cheaper than WhichOneof, and most values are strings: an empty
        # string or a zero holds no PII whichever field is set, so only then ask which it is.
        text = value.string_value
        if text:
            if len(text) >= self.min_length:
                redacted = self._text(text, key, tally)
                if redacted is not None:
                    value.string_value = redacted
            return
        number = value.int_value
        if number:
            if self.scan_cards and (number >= 10**12 or number <= -(10**12)):
                self._number(value, str(abs(number)), key, tally)
            return
        kind = value.WhichOneof("value")
        if kind == "double_value":
            double = value.double_value
            if self.scan_cards and 1e12 <= abs(double) < 1e19 and double.is_integer():
                self._number(value, str(int(abs(double))), key, tally)
        elif kind == "array_value":
            self._array(value.array_value.values, key, tally)
        elif kind == "kvlist_value":
            self._attributes(value.kvlist_value.values, tally)

    def _array(self, values: Any, key: str, tally: Tally) -> None:
        doomed: list[int] = []
        for index, item in enumerate(values):
            try:
                self._value(item, key, tally)
            except _Remove:
                doomed.append(index)
        for index in reversed(doomed):
            del values[index]

    def _number(self, value: AnyValue, digits: str, key: str, tally: Tally) -> None:
        if detectors.unseparated_card_ok(digits):
            strategy = self._strategy("card")
            tally.add("card", key, strategy)
            if strategy == "remove":
                raise _Remove
            value.string_value = self._replacement("card", digits.encode(), strategy)

    # -- strings ---------------------------------------------------------------------------

    def _text(self, text: str, key: str, tally: Tally) -> str | None:
        """The redacted text, or None when nothing in it is PII (the common case)."""
        if self.pattern is None or not self.candidate(text):
            return None
        found: list[str] = []
        redacted = self.pattern.sub(self._replacer(found), text)
        if not found:
            return None  # candidates only, every check said no
        remove = False
        for rule in found:
            strategy = self._strategy(rule)
            tally.add(rule, key, strategy)
            remove = remove or strategy == "remove"
        if remove:
            raise _Remove
        return redacted

    def _replacer(self, found: list[str]) -> Callable[[Any], str]:
        def replace(match: Any) -> str:
            rule = match.lastgroup
            text, start, end = match.string, match.start(), match.end()
            check = self.checks.get(rule)
            where = (start, end) if check is None else check(text, start, end)
            if where is None:
                return text[start:end]
            first, last = where
            return text[start:first] + self._redact(rule, text[first:last], found) + text[last:end]

        return replace

    def _redact(self, rule: str, original: str, found: list[str]) -> str:
        found.append(rule)
        strategy = self._strategy(rule)
        return "" if strategy == "remove" else self._replacement(rule, original.encode(), strategy)

    def _strategy(self, rule: str) -> str:
        return self.config.strategies.get(rule, self.config.strategy)

    def _replacement(self, rule: str, original: bytes, strategy: str) -> str:
        label = rule.upper()
        if strategy == "hash":
            digest = hmac.new(self.config.hash_key, original, hashlib.sha256).hexdigest()[:16]
            return f"[HMAC:{label}:{digest}]"
        return f"[REDACTED:{label}]"
