"""PII redaction, in place on the protobuf messages, before anything reaches the stream.

Every text the pipeline stores passes through it: span, event and scope names, the scope
version, span and link trace state, status messages, attribute keys and values at every
depth (arrays, key-value lists) of resource, scope, span, event and link attributes, bytes
values, and so the LLM prompt/completion content that instrumentations put in attributes
or events. Key rules come first (keys the user listed pass untouched, blocked keys are
redacted whole, LLM content keys can be dropped); then every text is scanned by one
combined pattern (collector/processors/detectors.py); integers and integral doubles with
the length of a card number are Luhn-checked. Text holding characters that NFKC maps to
ASCII (full-width digits, ＠, mathematical digits) is also scanned in its NFKC form.

Fast on clean data: one RE2 pass of the detectors' byte triggers over the request's
protobuf encoding (the body as received, or one serialization) finds the spans that can
hold a match; the others are not read field by field at all.

Bounded time: RE2 scans in time linear in the text, every candidate costs a check of
bounded length, and a request may spend at most `work_limit` units (values visited plus
candidate matches) before it is refused with RedactionBudgetExceeded (413 /
RESOURCE_EXHAUSTED), so no request holds the event loop for long.

Entry points beside `process` (used for logs and any other signal): `new_scan()` for one
request's budget, then `redact_resource`, `redact_scope`, `redact_attributes`,
`redact_value`, `redact_text`, `summarise(attributes, scan.tally, scan)` per record,
`scan.finish()` once, and `may_need_work(encoded message)` to skip clean records.
"""

from __future__ import annotations

import bisect
import hashlib
import hmac
import re
import unicodedata
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import re2
from opentelemetry.proto.common.v1.common_pb2 import AnyValue
from opentelemetry.proto.trace.v1.trace_pb2 import Span
from re2 import _re2

from collector import metrics
from collector.pipeline import SpanBatch, TooMuchWork
from collector.processors import detectors
from common import genai

STRATEGIES = ("mask", "hash", "remove")
SUMMARY_LEVELS = ("debug", "info", "silent")
KEY_RULE = "key"  # the name blocked-key redactions carry in masks and metrics
CONTENT_RULE = "llm_content"
IP_RULES = frozenset({"ipv4", "ipv6"})

DEFAULT_BLOCKED_KEYS = (
    r"(^|[._-])(password|passwd|pwd|passphrase|secret|client[._-]?secret)($|[._-])",
    r"(^|[._-])((access|refresh|id|session|auth|bearer|api)[._-]?)?token$",
    r"(^|[._-])(authorization|proxy[._-]authorization|cookie|set[._-]cookie|credentials?)($|[._-])",
    r"(^|[._-])(api[._-]?key|access[._-]?key|private[._-]?key|secret[._-]?key)($|[._-])",
    r"(^|[._-])(user|enduser)\.email$",
    r"(^|[._-])(ssn|social[._-]security[._-]number|credit[._-]?card|card[._-]number)($|[._-])",
    r"(^|[._-])(phone|phone[._-]?number|telephone|tel|mobile[._-]?(phone|number)|cell[._-]?phone|msisdn|fax)$",
)
# Words that every DEFAULT_BLOCKED_KEYS match contains, as a byte trigger (case-insensitive).
# "token" followed by "s" or "_" is left out: gen_ai.usage.input_tokens and llm.token_count.*
# are on every LLM span and never blocked; so is "tel" followed by "e" (telemetry.sdk.*;
# telephone is found as "phone").
BLOCKED_KEY_TRIGGER = (
    rb"(?i:passw|pwd|passphrase|secret|authori[sz]ation|cookie|credential|api[._-]?key|access[._-]?key|"
    rb"private[._-]?key|ssn|social[._-]security|credit[._-]?card|card[._-]?number|email|phone|tel(?:[^e]|$)|mobile|"
    rb"msisdn|fax|token(?:[^s_]|$))"
)

# Known semantic-convention keys whose values are numbers: never blocked by a key rule
# (gen_ai.server.time_to_first_token is not a token), and their numbers are not card-checked.
NUMERIC_KEYS = frozenset(genai.ALL_KEYS) | {
    "gen_ai.server.time_to_first_token", "gen_ai.server.time_per_output_token", "gen_ai.server.request.duration",
    "gen_ai.client.operation.duration", "gen_ai.client.token.usage", "gen_ai.request.max_tokens",
    "gen_ai.request.max_input_tokens", "gen_ai.request.seed", "gen_ai.openai.request.seed", "gen_ai.request.temperature",
    "gen_ai.request.top_p", "gen_ai.request.top_k", "gen_ai.request.frequency_penalty", "gen_ai.request.presence_penalty",
    "gen_ai.request.choice.count", "gen_ai.usage.total_tokens", "gen_ai.usage.cost", "llm.request.max_tokens",
    "llm.usage.total_tokens", "http.response.status_code", "http.status_code", "server.port", "net.peer.port",
    "net.host.port", "http.request.body.size", "http.response.body.size", "rpc.grpc.status_code",
}
NUMERIC_PREFIXES = ("gen_ai.usage.", "llm.token_count.", "llm.usage.", "llm.cost.")
# Known keys whose values name the server a span called or served: IP addresses in them are
# servers, not people, so the IP detectors skip them (every other detector still runs:
# user:password@ in a URL is still redacted). client.address and network.peer.address are
# not here: on a server span they are the client.
ENDPOINT_KEYS = frozenset({
    "server.address", "server.socket.address", "url.full", "url.domain", "http.url", "http.host", "net.host.name",
    "net.host.ip", "api_base", "openai.api_base", "gen_ai.openai.api_base", "llm.api_base", "gen_ai.endpoint",
})

# Where instrumentations put prompts and completions (GenAI, older GenAI, OpenInference).
LLM_CONTENT_KEYS = frozenset({
    "gen_ai.input.messages", "gen_ai.output.messages", "gen_ai.system_instructions",
    "gen_ai.prompt", "gen_ai.completion", "gen_ai.tool.call.arguments", "gen_ai.tool.call.result",
    "input.value", "output.value", "llm.prompts", "llm.input_messages", "llm.output_messages",
})
LLM_CONTENT_PREFIXES = ("gen_ai.prompt.", "gen_ai.completion.", "llm.input_messages.", "llm.output_messages.", "llm.prompts.")

IGNORE, DROP, BLOCK, SCAN, NUMBERS, ENDPOINT = range(6)
_NUMBER_KINDS = ("int_value", "double_value")
KEY_CACHE_LIMIT = 10_000  # keys are client-chosen: cap the cache so it cannot grow without end
# Work units: a value visited costs 1, a candidate match CANDIDATE_COST (a regex call and a
# check, about eight times a value's cost). 500,000 units are about half a second of CPU.
DEFAULT_WORK_LIMIT = 500_000
CANDIDATE_COST = 8
RE2_MAX_MEM = 64 << 20  # room for the DFA of the combined pattern, so RE2 never falls back to its slower NFA
UNANCHORED, ANCHOR_START = re2._Anchor.UNANCHORED, re2._Anchor.ANCHOR_START
# An AnyValue (after a KeyValue.value or ArrayValue.values tag and its length) holding an
# integer of 2^35 and more, or negative (tag 0x18, five or more varint bytes with the
# continuation bit), or a double of 2^33 and more (tag 0x21, 8 bytes, the exponent in the
# last): the only numbers long enough to be a card number.
NUMBER_TRIGGER = rb"[\x0a\x12][\x07-\x0b]\x18[\x80-\xff]{5}|[\x0a\x12]\x09\x21[\x00-\xff]{7}[\x42\x43\xc2\xc3]"


class RedactionBudgetExceeded(TooMuchWork):
    """A request needs more redaction work than REDACTION_WORK_LIMIT allows."""


@dataclass(frozen=True)
class RedactionConfig:
    detectors: tuple[str, ...] = detectors.BUILTIN_NAMES
    custom_patterns: dict[str, str] = field(default_factory=dict)
    strategy: str = "mask"
    strategies: dict[str, str] = field(default_factory=dict)  # rule name → strategy
    hash_key: bytes = b""
    blocked_keys: tuple[str, ...] = DEFAULT_BLOCKED_KEYS
    ignored_keys: tuple[str, ...] = ()  # kept verbatim (key and value); `prefix.*` for a prefix
    drop_llm_content: bool = False
    summary: str = "debug"  # debug: counts and keys; info: counts; silent: nothing (the Collector's levels)
    keep_private_ips: bool = True
    work_limit: int = DEFAULT_WORK_LIMIT


class Tally:
    """What redaction changed in one span (or one resource): the summary attributes.

    Named as the Collector's redaction processor names them: "masked" values were replaced
    in place (mask or hash), "redacted" attributes were deleted (remove).
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


class Scan:
    """One request's redaction: the work it may still do, and the tally being filled."""

    __slots__ = ("remaining", "limit", "tally", "counts")

    def __init__(self, limit: int) -> None:
        self.remaining = self.limit = limit
        self.tally = Tally()
        self.counts: Counter[str] = Counter()  # redactions by rule, for /metrics once a request

    def finish(self) -> None:
        """Count the request's redactions in /metrics (once, not once a span: a labelled
        counter costs more than the rest of a span's summary)."""
        for rule, count in self.counts.items():
            metrics.REDACTIONS.labels(rule).inc(count)
        self.counts.clear()

    def spend(self, units: int) -> None:
        self.remaining -= units
        if self.remaining < 0:
            raise RedactionBudgetExceeded(
                f"redaction of this request would take more than REDACTION_WORK_LIMIT={self.limit} units of work "
                "(values and candidate matches); send fewer spans per request"
            )


class _Remove(Exception):
    """A value ruled for removal: the attribute holding it is deleted."""


@dataclass(frozen=True)
class _KeyPlan:
    action: int
    key: str | None  # the key as it is stored when it held PII, else None
    rules: tuple[str, ...]  # rules that rewrote the key
    remove: bool  # a rule that rewrote the key has the remove strategy
    clean: bool = False  # the key is kept and its value is scanned: the fast path applies


@dataclass
class _Survey:
    """Which parts of a request the trigger found something in; `everything` when unknown."""

    everything: bool = False
    resources: set[int] = field(default_factory=set)
    scopes: set[tuple[int, int]] = field(default_factory=set)
    # (resource, scope) → {span index in the wire: the span's fields with a hit, as
    # (field number, occurrence of that number)}; None: the whole span
    spans: dict[tuple[int, int], dict[int, set[tuple[int, int]] | None]] = field(default_factory=dict)
    elsewhere: bool = False  # schema URLs or unknown fields
    wire: bytes = b""
    regions: list[tuple[int, int, int, int, int, int]] = field(default_factory=list)
    counts: list[list[int]] = field(default_factory=list)


class Redactor:
    name = "redaction"

    def __init__(self, config: RedactionConfig) -> None:
        if config.summary not in SUMMARY_LEVELS:
            raise ValueError(f"REDACTION_SUMMARY must be one of {', '.join(SUMMARY_LEVELS)}, got {config.summary!r}")
        for rule, strategy in {"default": config.strategy, **config.strategies}.items():
            if strategy not in STRATEGIES:
                raise ValueError(f"redaction strategy for {rule!r} must be one of {', '.join(STRATEGIES)}, got {strategy!r}")
        if "hash" in (config.strategy, *config.strategies.values()) and len(config.hash_key) < 16:
            raise ValueError("hash redaction needs REDACTION_HASH_KEY of at least 16 characters (a secret salt)")
        if config.work_limit < 1:
            raise ValueError(f"REDACTION_WORK_LIMIT must be a positive number, got {config.work_limit}")
        self.config = config
        chosen = detectors.select(config.detectors, config.custom_patterns, config.keep_private_ips)
        unknown = set(config.strategies) - {d.name for d in chosen} - {KEY_RULE}
        if unknown:  # a typo ("emial:hash") would otherwise leave emails masked, silently
            raise ValueError(f"REDACTION_RULE_STRATEGIES names unknown rule(s) {', '.join(sorted(unknown))}")
        self.detectors = chosen
        try:
            self._regexp = _compile(detectors.combined_pattern(chosen) or "$^")
            self._singles = [_compile(d.pattern) for d in chosen]
        except ValueError as exc:  # re2 is stricter than re, which checked custom patterns
            raise ValueError(f"redaction patterns must be RE2 syntax (no look-around or back-references): {exc}") from None
        groups = {name.decode(): number for name, number in self._regexp.NamedCapturingGroups()}
        self._groups = [(groups[d.name], index) for index, d in enumerate(chosen)]
        self._labels = [f"[REDACTED:{d.name.upper()}]".encode() for d in chosen]
        self.scan_cards = any(d.name == "card" for d in chosen)
        self.blocked = [re.compile(p, re.IGNORECASE) for p in config.blocked_keys]
        self.ignored = frozenset(k for k in config.ignored_keys if not k.endswith("*"))
        self.ignored_prefixes = tuple(k[:-1] for k in config.ignored_keys if k.endswith("*"))
        self._trigger = self._make_trigger(chosen)
        # The same over one text: a value it finds nothing in has no candidate (a cheaper
        # question than the combined pattern's, which most values of a walked span answer no).
        self._text_trigger = self._make_trigger(chosen, keys=False)
        self._key_plans: dict[str, _KeyPlan] = {}

    def _make_trigger(self, chosen: list[detectors.Detector], keys: bool = True) -> Any:
        """The byte trigger over a request's encoding (or, without `keys`, over one text), or
        None when it cannot be exact.

        Custom detectors and custom blocked keys are regexes over decoded text whose word
        boundaries and anchors have no faithful byte form: with either, every span is
        walked (documented in docs/COLLECTOR_PROCESSING.md).
        """
        if self.config.custom_patterns or (keys and self.config.blocked_keys != DEFAULT_BLOCKED_KEYS):
            return None
        parts = [detectors.trigger_of(d) for d in chosen] + [detectors.COMPAT_TRIGGER]
        if not keys:
            return _latin1(parts)
        parts.append(BLOCKED_KEY_TRIGGER)
        if self.scan_cards:
            parts.append(NUMBER_TRIGGER)
        if self.config.drop_llm_content:
            parts += [re.escape(k).encode() for k in sorted(LLM_CONTENT_KEYS)]
        return _latin1(parts)

    # -- the stage -------------------------------------------------------------------------

    def new_scan(self) -> Scan:
        return Scan(self.config.work_limit)

    def process(self, batch: SpanBatch) -> SpanBatch:
        request = batch.request
        survey = self._survey(batch)
        if survey is None:
            return batch
        scan = self.new_scan()
        if survey.elsewhere:
            request.DiscardUnknownFields()  # unknown fields are stored in the stream, unread
        for ri, resource_spans in enumerate(request.resource_spans):
            scan.tally = resource_tally = Tally()
            if survey.everything or ri in survey.resources:
                self.redact_resource(resource_spans.resource, scan)
            if survey.elsewhere:
                resource_spans.schema_url = self._field_text(resource_spans.schema_url, "schema_url", scan)
            for si, scope_spans in enumerate(resource_spans.scope_spans):
                scan.tally = resource_tally
                if survey.everything or (ri, si) in survey.scopes:
                    self.redact_scope(scope_spans.scope, scan)
                if survey.elsewhere:
                    scope_spans.schema_url = self._field_text(scope_spans.schema_url, "schema_url", scan)
                for span, fields in self._spans_to_walk(survey, ri, si, scope_spans.spans):
                    scan.tally = Tally()
                    if fields is None:
                        self.redact_span(span, scan)
                    else:
                        self._redact_span_fields(span, fields, scan)
                    self.summarise(span.attributes, scan.tally, scan)
            self.summarise(resource_spans.resource.attributes, resource_tally, scan)
        scan.finish()
        return batch

    # -- the survey: one trigger pass over the request's bytes -----------------------------

    def may_need_work(self, encoded: bytes) -> bool:
        """Could redaction change anything in this encoded message (a span, a log record)?"""
        return self._trigger is None or self._trigger.Match(UNANCHORED, encoded, 0, len(encoded))[0][0] >= 0

    def _survey(self, batch: SpanBatch) -> _Survey | None:
        """None when the request holds nothing to redact; else where to look."""
        if self._trigger is None:
            return _Survey(everything=True)
        wire = batch.wire if batch.wire is not None else batch.request.SerializeToString()
        if not isinstance(wire, bytes):
            wire = bytes(wire)
        end = len(wire)
        first = self._trigger.Match(UNANCHORED, wire, 0, end)[0][0]
        if first < 0:
            return None
        try:
            regions, counts = _layout(wire)
        except (IndexError, ValueError):  # an encoding this reader does not follow: walk it all
            return _Survey(everything=True)
        if [len(scopes) for scopes in counts] != [len(rs.scope_spans) for rs in batch.request.resource_spans]:
            return _Survey(everything=True)
        survey = _Survey(wire=wire, regions=regions, counts=counts)
        starts = [r[0] for r in regions]
        position = first
        while position >= 0:
            index = bisect.bisect_right(starts, position) - 1
            if index >= 0 and position < regions[index][1]:
                region_start, region_end, kind, ri, si, span_index = regions[index]
                if kind == 0:
                    survey.resources.add(ri)
                    resume = region_end
                elif kind == 1:
                    survey.scopes.add((ri, si))
                    resume = region_end
                else:
                    resume = self._locate(wire, region_start, region_end, position, survey.spans.setdefault((ri, si), {}), span_index)
            else:  # between regions: schema URLs or unknown fields; one hit there is enough
                survey.elsewhere = True
                resume = starts[index + 1] if index + 1 < len(starts) else end
            if resume >= end:
                break
            position = self._trigger.Match(UNANCHORED, wire, resume, end)[0][0]
        return survey

    @staticmethod
    def _locate(wire: bytes, start: int, end: int, position: int, spans: dict, span_index: int) -> int:
        """Record which field of the span at wire[start:end] holds the hit at `position`;
        return where to look for the next hit (the end of that field)."""
        fields = spans.get(span_index, ())
        if fields is None:
            return end
        seen: dict[int, int] = {}
        pos = start
        try:
            while pos < end:  # the span's fields, read only up to the one holding the hit
                key = wire[pos]
                pos += 1
                if key >= 0x80:
                    key, pos = _varint(wire, pos - 1)
                wire_type = key & 7
                if wire_type == 2:
                    length = wire[pos]
                    pos += 1
                    if length >= 0x80:
                        length, pos = _varint(wire, pos - 1)
                    value_end = pos + length
                    number = key >> 3
                    occurrence = seen.get(number, 0)
                    seen[number] = occurrence + 1
                    # A field's key and length bytes come first: a hit there belongs to it too.
                    if position < value_end:
                        if not fields:
                            fields = spans[span_index] = set()
                        fields.add((number, occurrence))
                        return value_end
                    pos = value_end
                elif wire_type == 0:
                    _, pos = _varint(wire, pos)
                elif wire_type == 1:
                    pos += 8
                elif wire_type == 5:
                    pos += 4
                else:
                    raise ValueError("group")
        except (IndexError, ValueError):
            pass
        spans[span_index] = None  # a hit outside every text field, or an encoding this reader does not follow: walk it all
        return end

    def _spans_to_walk(self, survey: _Survey, ri: int, si: int, spans: Any) -> list[tuple[Any, set[tuple[int, int]] | None]]:
        """(span, the fields to redact or None for all of them)."""
        if survey.everything:
            return [(span, None) for span in spans]
        hits = survey.spans.get((ri, si))
        if not hits:
            return []
        if len(spans) == survey.counts[ri][si]:
            return [(spans[i], fields) for i, fields in hits.items()]
        # Earlier stages dropped spans (validation, sampling): find the hit ones by their ids.
        wanted = {}
        for start, end, kind, r, sc, index in survey.regions:
            if kind == 2 and r == ri and sc == si and index in hits:
                decoded = Span.FromString(survey.wire[start:end])
                wanted[(decoded.trace_id, decoded.span_id)] = hits[index]
        return [(span, wanted[key]) for span in spans if (key := (span.trace_id, span.span_id)) in wanted]

    # -- what a span, a resource, a scope hold ---------------------------------------------

    def redact_span(self, span: Any, scan: Scan) -> None:
        span.DiscardUnknownFields()
        span.name = self._field_text(span.name, "name", scan)
        span.trace_state = self._field_text(span.trace_state, "trace_state", scan)
        self.redact_attributes(span.attributes, scan)
        for event in span.events:
            event.name = self._field_text(event.name, "events.name", scan)
            self.redact_attributes(event.attributes, scan)
        for link in span.links:
            link.trace_state = self._field_text(link.trace_state, "links.trace_state", scan)
            self.redact_attributes(link.attributes, scan)
        span.status.message = self._field_text(span.status.message, "status.message", scan)

    def _redact_span_fields(self, span: Any, fields: set[tuple[int, int]], scan: Scan) -> None:
        """Redact only the fields of a span the survey found a hit in (Span field numbers:
        3 trace_state, 5 name, 9 attributes, 11 events, 13 links, 15 status)."""
        doomed: list[int] = []
        for number, occurrence in fields:
            if number == 9:
                scan.spend(1)
                if self._redact_key_value(span.attributes[occurrence], scan):
                    doomed.append(occurrence)
            elif number == 5:
                span.name = self._field_text(span.name, "name", scan)
            elif number == 3:
                span.trace_state = self._field_text(span.trace_state, "trace_state", scan)
            elif number == 11:
                event = span.events[occurrence]
                event.name = self._field_text(event.name, "events.name", scan)
                self.redact_attributes(event.attributes, scan)
            elif number == 13:
                link = span.links[occurrence]
                link.trace_state = self._field_text(link.trace_state, "links.trace_state", scan)
                self.redact_attributes(link.attributes, scan)
            elif number == 15:
                span.status.message = self._field_text(span.status.message, "status.message", scan)
            else:  # ids, or a field this version does not know (kept unread in the stream)
                span.DiscardUnknownFields()
        for index in sorted(doomed, reverse=True):
            del span.attributes[index]

    def redact_resource(self, resource: Any, scan: Scan) -> None:
        resource.DiscardUnknownFields()
        self.redact_attributes(resource.attributes, scan)

    def redact_scope(self, scope: Any, scan: Scan) -> None:
        scope.DiscardUnknownFields()
        scope.name = self._field_text(scope.name, "scope.name", scan)
        scope.version = self._field_text(scope.version, "scope.version", scan)
        self.redact_attributes(scope.attributes, scan)

    def _field_text(self, text: str, where: str, scan: Scan) -> str:
        """A plain string field: its redacted form ("" when a rule removes it)."""
        if not text:
            return text
        try:
            redacted = self.redact_text(text, where, scan)
        except _Remove:
            return ""
        return text if redacted is None else redacted

    def summarise(self, attributes: Any, tally: Tally, scan: Scan | None = None) -> None:
        """Add the summary attributes; count the redactions in `scan` (see Scan.finish) or
        at once without one."""
        if tally.rules is None:
            return
        if scan is not None:
            scan.counts.update(tally.rules)
        else:
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

    def redact_attributes(self, attributes: Any, scan: Scan) -> None:
        doomed: list[int] = []
        plans = self._key_plans
        trigger = self._text_trigger
        scan.spend(len(attributes))
        for index, kv in enumerate(attributes):
            key = kv.key
            plan = plans.get(key)
            if plan is None:
                plan = self._key_plan(key, scan)
            if plan.clean:
                # The common cases, inline: a plain key and an ASCII string without a
                # candidate, or a number too short to be a card.
                value = kv.value
                text = value.string_value
                if text:
                    if text.isascii():
                        data = text.encode()
                        if trigger.Match(UNANCHORED, data, 0, len(data))[0][0] < 0:
                            continue
                else:
                    kind = value.WhichOneof("value")
                    if kind is None or kind == "bool_value" or (kind in _NUMBER_KINDS and -1e12 < getattr(value, kind) < 1e12):
                        continue
            if self._redact_planned(kv, key, plan, scan):
                doomed.append(index)
        for index in reversed(doomed):  # deleting while iterating would skip the next attribute
            del attributes[index]

    def _redact_key_value(self, kv: Any, scan: Scan) -> bool:
        """Redact one attribute; True when it must be deleted."""
        key = kv.key
        plan = self._key_plans.get(key)
        if plan is None:
            plan = self._key_plan(key, scan)
        return self._redact_planned(kv, key, plan, scan)

    def _redact_planned(self, kv: Any, key: str, plan: _KeyPlan, scan: Scan) -> bool:
        if plan.action == IGNORE:
            return False
        for rule in plan.rules:
            scan.tally.add(rule, "attribute.key", self._strategy(rule))
        if plan.remove:
            return True
        if plan.key is not None:
            kv.key = key = plan.key
        try:
            if plan.action == BLOCK:
                self._block(kv.value, key, scan)
            elif plan.action == DROP:
                scan.tally.add(CONTENT_RULE, key, "remove")
                return True
            else:
                self.redact_value(kv.value, key, scan, plan.action)
        except _Remove:
            return True
        return False

    def _key_plan(self, key: str, scan: Scan) -> _KeyPlan:
        normal = unicodedata.normalize("NFKC", key) if not key.isascii() else key
        if key in self.ignored or (self.ignored_prefixes and key.startswith(self.ignored_prefixes)):
            action = IGNORE
        elif self.config.drop_llm_content and (normal in LLM_CONTENT_KEYS or normal.startswith(LLM_CONTENT_PREFIXES)):
            action = DROP
        elif normal in NUMERIC_KEYS or normal.startswith(NUMERIC_PREFIXES):
            action = NUMBERS
        elif normal in ENDPOINT_KEYS:
            action = ENDPOINT
        elif any(p.search(normal) for p in self.blocked):
            action = BLOCK
        else:
            action = SCAN
        rewritten, rules, remove = None, (), False
        if action != IGNORE:
            scratch = Scan(1 << 30)  # a key's own scan is cached: charged once, below
            try:
                rewritten = self.redact_text(key, "attribute.key", scratch)
            except _Remove:
                remove = True
            if scratch.tally.rules:
                rules = tuple(scratch.tally.rules.elements())
            scan.spend(scratch.limit - scratch.remaining)
        clean = action in (SCAN, NUMBERS, ENDPOINT) and rewritten is None and not remove and not rules and self._text_trigger is not None
        plan = _KeyPlan(action, rewritten, rules, remove, clean)
        if len(self._key_plans) < KEY_CACHE_LIMIT:
            self._key_plans[key] = plan
        return plan

    def _block(self, value: AnyValue, key: str, scan: Scan) -> None:
        if value.WhichOneof("value") is None:
            return  # an empty value reveals nothing
        strategy = self._strategy(KEY_RULE)
        scan.tally.add(KEY_RULE, key, strategy)
        if strategy == "remove":
            raise _Remove
        # A string is hashed as the detectors hash it, so a value correlates wherever it appears.
        original = value.string_value.encode() if value.WhichOneof("value") == "string_value" else value.SerializeToString()
        value.string_value = self._replacement(KEY_RULE, original, strategy).decode()

    def redact_value(self, value: AnyValue, key: str, scan: Scan, action: int = SCAN) -> None:
        """Redact one AnyValue in place; raises _Remove when the attribute holding it must go."""
        text = value.string_value
        if text:
            redacted = self.redact_text(text, key, scan, action)
            if redacted is not None:
                value.string_value = redacted
            return
        kind = value.WhichOneof("value")
        if kind == "int_value":
            if action < NUMBERS and self.scan_cards and abs(value.int_value) >= 10**12 and detectors.unseparated_card_ok(str(abs(value.int_value))):
                self._number_is_card(value, str(abs(value.int_value)), key, scan)
        elif kind == "double_value":
            number = value.double_value
            if action < NUMBERS and self.scan_cards and 1e12 <= abs(number) < 1e19 and number == int(number):
                digits = str(abs(int(number)))
                if detectors.unseparated_card_ok(digits):
                    self._number_is_card(value, digits, key, scan)
        elif kind == "bytes_value":
            # Bytes that are UTF-8 text are redacted as text (NFKC included); others as they are
            # (RE2 skips what is not UTF-8). The value stays bytes.
            raw = value.bytes_value
            try:
                redacted_text = self.redact_text(raw.decode(), key, scan, action)
                redacted_bytes = None if redacted_text is None else redacted_text.encode()
            except UnicodeDecodeError:
                redacted_bytes = self._scan_bytes(raw, key, scan, action)
            if redacted_bytes is not None:
                value.bytes_value = redacted_bytes
        elif kind == "array_value":
            items = value.array_value.values
            doomed = []
            for index, item in enumerate(items):
                scan.spend(1)
                try:
                    self.redact_value(item, key, scan, action)
                except _Remove:
                    doomed.append(index)
            for index in reversed(doomed):
                del items[index]
        elif kind == "kvlist_value":
            self.redact_attributes(value.kvlist_value.values, scan)

    def _number_is_card(self, value: AnyValue, digits: str, key: str, scan: Scan) -> None:
        strategy = self._strategy("card")
        scan.tally.add("card", key, strategy)
        if strategy == "remove":
            raise _Remove
        value.string_value = self._replacement("card", digits.encode(), strategy).decode()

    # -- text ------------------------------------------------------------------------------

    def redact_text(self, text: str, where: str, scan: Scan, action: int = SCAN) -> str | None:
        """The redacted text, or None when nothing in it is PII (the common case).

        Raises _Remove when a rule with the remove strategy matched.
        """
        if not text.isascii():
            normal = unicodedata.normalize("NFKC", text)
            if normal != text:
                redacted = self._scan_bytes(normal.encode(), where, scan, action)
                if redacted is not None:
                    return redacted.decode()
        redacted = self._scan_bytes(text.encode(), where, scan, action)
        return None if redacted is None else redacted.decode()

    def _scan_bytes(self, data: bytes, where: str, scan: Scan, action: int) -> bytes | None:
        end = len(data)
        if self._text_trigger is not None and self._text_trigger.Match(UNANCHORED, data, 0, end)[0][0] < 0:
            return None
        match = self._regexp.Match
        spans = match(UNANCHORED, data, 0, end)
        if spans[0][0] < 0:
            return None
        pieces: list[bytes] = []
        found: list[str] = []
        done = 0  # data[:done] is in pieces
        while True:
            start, stop = spans[0]
            if start < 0:
                break
            scan.spend(CANDIDATE_COST)
            where_span, index = self._confirm(data, spans, start, end, action, scan)
            if where_span is None:
                position = start + 1  # a rejected candidate may hide another starting inside it
            else:
                first, last = where_span
                if index >= 0:
                    rule = self.detectors[index].name
                    found.append(rule)
                    pieces.append(data[done:first])
                    strategy = self._strategy(rule)
                    if strategy != "remove":
                        pieces.append(self._replacement(rule, data[first:last], strategy, index))
                    done = last
                position = max(last, start + 1)
            if position >= end:
                break
            spans = match(UNANCHORED, data, position, end)
        if not found:
            return None  # candidates only, every check said no
        remove = False
        for rule in found:
            strategy = self._strategy(rule)
            scan.tally.add(rule, where, strategy)
            remove = remove or strategy == "remove"
        if remove:
            raise _Remove
        pieces.append(data[done:])
        return b"".join(pieces)

    def _confirm(self, data: bytes, spans: Any, start: int, end: int, action: int, scan: Scan) -> tuple[tuple[int, int] | None, int]:
        """The part of a candidate to redact and its detector; (span, -1) for a match to keep
        as it is (an address under an endpoint key); (None, -1) when no detector confirms one
        starting here (the next detectors are tried at the same place)."""
        chosen = -1
        for group, index in self._groups:
            if spans[group][0] >= 0:
                chosen = index
                break
        stop = spans[0][1]
        for index in range(chosen, len(self.detectors)):
            if index != chosen:
                scan.spend(CANDIDATE_COST)
                other = self._singles[index].Match(ANCHOR_START, data, start, end)[0]
                if other[0] < 0:
                    continue
                stop = other[1]
            detector = self.detectors[index]
            if action == ENDPOINT and detector.name in IP_RULES:
                return (start, stop), -1
            where = (start, stop) if detector.check is None else detector.check(data, start, stop)
            if where is not None:
                return where, index
        return None, -1

    def _strategy(self, rule: str) -> str:
        return self.config.strategies.get(rule, self.config.strategy)

    def _replacement(self, rule: str, original: bytes, strategy: str, index: int = -1) -> bytes:
        if strategy == "hash":
            digest = hmac.new(self.config.hash_key, original, hashlib.sha256).hexdigest()[:16]
            return f"[HMAC:{rule.upper()}:{digest}]".encode()
        return self._labels[index] if index >= 0 else f"[REDACTED:{rule.upper()}]".encode()


def _latin1(parts: list[bytes]) -> Any:
    """One RE2 over raw bytes (Latin-1: a byte is a character) matching any of `parts`."""
    options = _re2.RE2.Options()
    options.encoding = _re2.RE2.Options.Encoding.LATIN1
    options.dot_nl = True
    options.max_mem = RE2_MAX_MEM
    options.never_capture = True
    return _re2.RE2(b"|".join(b"(?:" + p + b")" for p in parts), options)


def _compile(pattern: str) -> Any:
    options = _re2.RE2.Options()
    options.max_mem = RE2_MAX_MEM
    options.log_errors = False
    regexp = _re2.RE2(pattern.encode(), options)
    if not regexp.ok():
        raise ValueError(f"cannot compile {pattern[:60]!r}")
    return regexp


# -- the request's layout in its encoding ----------------------------------------------------
# ExportTraceServiceRequest: 1 resource_spans; ResourceSpans: 1 resource, 2 scope_spans,
# 3 schema_url; ScopeSpans: 1 scope, 2 spans, 3 schema_url. Regions: (start, end, kind,
# resource index, scope index, span index), kind 0 resource, 1 scope, 2 span.


def _varint(buf: bytes, pos: int) -> tuple[int, int]:
    byte = buf[pos]
    if byte < 0x80:
        return byte, pos + 1
    result, shift = byte & 0x7F, 7
    while True:
        pos += 1
        byte = buf[pos]
        result |= (byte & 0x7F) << shift
        if byte < 0x80:
            return result, pos + 1
        shift += 7
        if shift > 63:
            raise ValueError("varint too long")


def _fields(buf: bytes, start: int, end: int) -> list[tuple[int, int, int]]:
    """(field number, value start, value end) of the length-delimited fields in buf[start:end]."""
    out = []
    pos = start
    while pos < end:
        key, pos = _varint(buf, pos)
        wire_type = key & 7
        if wire_type == 2:
            length, pos = _varint(buf, pos)
            out.append((key >> 3, pos, pos + length))
            pos += length
        elif wire_type == 0:
            _, pos = _varint(buf, pos)
        elif wire_type == 1:
            pos += 8
        elif wire_type == 5:
            pos += 4
        else:
            raise ValueError("group or unknown wire type")
    if pos != end:
        raise ValueError("truncated")
    return out


def _layout(wire: bytes) -> tuple[list[tuple[int, int, int, int, int, int]], list[list[int]]]:
    regions: list[tuple[int, int, int, int, int, int]] = []
    counts: list[list[int]] = []
    ri = 0
    for number, start, end in _fields(wire, 0, len(wire)):
        if number != 1:
            continue
        scopes: list[int] = []
        si = 0
        for inner, s, e in _fields(wire, start, end):
            if inner == 1:
                regions.append((s, e, 0, ri, -1, -1))
            elif inner == 2:
                spans = 0
                for leaf, ls, le in _fields(wire, s, e):
                    if leaf == 1:
                        regions.append((ls, le, 1, ri, si, -1))
                    elif leaf == 2:
                        regions.append((ls, le, 2, ri, si, spans))
                        spans += 1
                scopes.append(spans)
                si += 1
        counts.append(scopes)
        ri += 1
    regions.sort()
    return regions, counts

