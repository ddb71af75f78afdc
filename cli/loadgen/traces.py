"""Realistic LLM-application traces as OTLP ExportTraceServiceRequest messages.

Three shapes of trace, as chat, RAG and agent applications produce them:

- rag: HTTP root → conversation lookup (db) → embeddings call → vector search → chat call
- agent: HTTP root → conversation lookup → (chat call asking for a tool → tool run) × 1-3 → final chat call
- summarize: HTTP root → chat call over a long document

LLM spans follow the OpenTelemetry GenAI conventions (provider, request and response
model, token usage, prompt and completion content as `gen_ai.input.messages` /
`gen_ai.output.messages`): about 20 attributes and 1.5 KB of text each. Errors (a failed
LLM call with an `exception` event, the root answering 5xx) and slow traces (LLM calls ten
times slower) come at set rates, and a set share of user messages carries planted PII.

Everything is drawn from `random.Random((seed << 40) | trace_index)`, so trace i is the
same whoever builds it and whatever was built before it: the same seed gives the same
spans, and workers can build disjoint slices of one plan.
"""

from __future__ import annotations

import json
import random
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import KeyValue
from opentelemetry.proto.trace.v1.trace_pb2 import ScopeSpans, Span, Status

from cli.loadgen import text
from cli.loadgen.models import BUILT_IN, Model

NS = 1_000_000_000
MS = 1_000_000
SERVICE_NAMES = ("support-chat", "kb-search", "agent-runner", "doc-summarizer", "sales-assistant", "ticket-triage",
                 "code-review-bot", "email-drafter")
SCOPES = {
    "http": ("opentelemetry.instrumentation.fastapi", "0.59b0"),
    "llm": ("opentelemetry.instrumentation.openai_v2", "2.1b0"),
    "db": ("opentelemetry.instrumentation.asyncpg", "0.59b0"),
    "app": ("app", "1.0.0"),
}
ROUTES = {"rag": "/v1/chat", "agent": "/v1/agent/run", "summarize": "/v1/summarize"}
ERRORS = (
    ("RateLimitError", "Error code: 429 - Rate limit reached for requests. Please try again in 20s.", 429),
    ("APITimeoutError", "Request timed out after 60.0 seconds.", 504),
    ("InternalServerError", "Error code: 500 - The server had an error while processing your request.", 502),
    ("BadRequestError", "Error code: 400 - This model's maximum context length is 128000 tokens.", 400),
)
FINISH = ("stop", "stop", "stop", "length")


@dataclass(frozen=True)
class Profile:
    """What to generate. `end_ns` is the newest trace start; traces spread over `days` before it."""

    count: int
    end_ns: int
    seed: int = 1
    services: int = 3
    days: float = 1.0
    error_rate: float = 0.05
    slow_rate: float = 0.02
    pii_rate: float = 0.05
    batch_spans: int = 200
    models: tuple[Model, ...] = BUILT_IN

    def __post_init__(self) -> None:
        for name in ("error_rate", "slow_rate", "pii_rate"):
            if not 0 <= getattr(self, name) <= 1:
                raise ValueError(f"{name.replace('_', ' ')} must be between 0 and 1")
        if self.count < 0 or self.services < 1 or self.days <= 0 or self.batch_spans < 1:
            raise ValueError("count must be ≥ 0, services and batch spans ≥ 1, days > 0")
        if not any(not m.embedding for m in self.models):
            raise ValueError("the model list has no chat model")


@dataclass
class Stats:
    """What was generated, for the caller's summary and for tests."""

    traces: int = 0
    spans: int = 0
    llm_spans: int = 0
    events: int = 0
    error_traces: int = 0
    slow_traces: int = 0
    pii: Counter = field(default_factory=Counter)
    shapes: Counter = field(default_factory=Counter)

    def add(self, other: "Stats") -> None:
        for name in ("traces", "spans", "llm_spans", "events", "error_traces", "slow_traces"):
            setattr(self, name, getattr(self, name) + getattr(other, name))
        self.pii.update(other.pii)
        self.shapes.update(other.shapes)


@dataclass(frozen=True)
class Batch:
    """One export request, its span count and its serialized body."""

    request: ExportTraceServiceRequest
    spans: int

    def body(self) -> bytes:
        return self.request.SerializeToString()


def _rng(seed: int, index: int) -> random.Random:
    return random.Random((seed << 40) | index)


def _shape(rng: random.Random) -> tuple[str, int]:
    """(kind, tool rounds): the first draws of every trace, so plan() can count spans cheaply."""
    roll = rng.random()
    if roll < 0.45:
        return "rag", 0
    if roll < 0.8:
        return "agent", rng.randint(1, 3)
    return "summarize", 0


def _size(kind: str, rounds: int) -> int:
    return {"rag": 5, "agent": 3 + 2 * rounds, "summarize": 3}[kind]


def plan(profile: Profile) -> list[int]:
    """Spans per trace, summing to exactly profile.count (the last trace is cut short)."""
    sizes, total, index = [], 0, 0
    while total < profile.count:
        size = min(_size(*_shape(_rng(profile.seed, index))), profile.count - total)
        sizes.append(size)
        total += size
        index += 1
    return sizes


class _RequestBuilder:
    """Spans are made in place inside the request (no copies), grouped by service and scope."""

    def __init__(self, profile: Profile, resources: list[list[KeyValue]]) -> None:
        self.request = ExportTraceServiceRequest()
        self.resources = resources
        self._scopes: dict[tuple[int, str], ScopeSpans] = {}
        self.spans = 0

    def span(self, service: int, scope: str) -> Span:
        key = (service, scope)
        container = self._scopes.get(key)
        if container is None:
            resource_spans = self.request.resource_spans.add()
            resource_spans.resource.attributes.extend(self.resources[service])
            container = resource_spans.scope_spans.add()
            container.scope.name, container.scope.version = SCOPES[scope]
            self._scopes[key] = container
        self.spans += 1
        return container.spans.add()


def _attr(span: Span | object, key: str, value: object) -> None:
    kv = span.attributes.add()  # type: ignore[attr-defined]
    kv.key = key
    if isinstance(value, bool):
        kv.value.bool_value = value
    elif isinstance(value, int):
        kv.value.int_value = value
    elif isinstance(value, float):
        kv.value.double_value = value
    elif isinstance(value, (list, tuple)):
        for item in value:
            kv.value.array_value.values.add().string_value = str(item)
    else:
        kv.value.string_value = str(value)


def _resources(profile: Profile) -> list[list[KeyValue]]:
    resources = []
    for n in range(profile.services):
        name = SERVICE_NAMES[n % len(SERVICE_NAMES)] + (f"-{n // len(SERVICE_NAMES) + 1}" if n >= len(SERVICE_NAMES) else "")
        holder = Span()
        for key, value in (
            ("service.name", name), ("service.version", f"1.{n % 7}.{n % 3}"), ("service.namespace", "llm-apps"),
            ("deployment.environment.name", "production"), ("host.name", f"{name}-7d9f8b6c5-{n:05d}"),
            ("telemetry.sdk.name", "opentelemetry"), ("telemetry.sdk.language", "python"),
            ("telemetry.sdk.version", "1.38.0"),
        ):
            _attr(holder, key, value)
        resources.append(list(holder.attributes))
    return resources


class TraceFactory:
    def __init__(self, profile: Profile) -> None:
        self.profile = profile
        self.chat_models = [m for m in profile.models if not m.embedding]
        self.embedding_models = [m for m in profile.models if m.embedding] or [m for m in BUILT_IN if m.embedding]
        self.resources = _resources(profile)

    def batches(self, sizes: list[int], first: int = 0, stats: Stats | None = None) -> Iterator[Batch]:
        """Export requests holding traces first..first+len(sizes)-1 of a plan, whole traces each."""
        stats = stats if stats is not None else Stats()
        builder = _RequestBuilder(self.profile, self.resources)
        for offset, size in enumerate(sizes):
            self.trace(builder, first + offset, size, stats)
            if builder.spans >= self.profile.batch_spans:
                yield Batch(builder.request, builder.spans)
                builder = _RequestBuilder(self.profile, self.resources)
        if builder.spans:
            yield Batch(builder.request, builder.spans)

    def trace(self, builder: _RequestBuilder, index: int, limit: int, stats: Stats) -> None:
        rng = _rng(self.profile.seed, index)
        kind, rounds = _shape(rng)
        _TraceWriter(self, builder, rng, index, kind, rounds, limit, stats).write()


class _TraceWriter:
    """Builds one trace, child after child, stopping at `limit` spans."""

    def __init__(self, factory: TraceFactory, builder: _RequestBuilder, rng: random.Random, index: int,
                 kind: str, rounds: int, limit: int, stats: Stats) -> None:
        self.f, self.b, self.rng = factory, builder, rng
        self.kind, self.rounds, self.limit, self.stats = kind, rounds, limit, stats
        p = factory.profile
        self.service = rng.randrange(p.services)
        self.trace_id = rng.getrandbits(128).to_bytes(16, "big") or b"\x01" * 16
        self.start = p.end_ns - int(rng.random() * p.days * 86_400 * NS)
        self.cursor = self.start + rng.randint(1, 4) * MS
        self.failing = rng.random() < p.error_rate
        self.slow = rng.random() < p.slow_rate
        self.model = rng.choice(factory.chat_models)
        self.conversation = f"conv_{rng.getrandbits(48):012x}"
        self.user = f"user_{rng.randrange(100_000):05d}"
        self.made = 0
        self.error: tuple[str, str, int] | None = None

    def _span_id(self) -> bytes:
        return self.rng.getrandbits(64).to_bytes(8, "big") or b"\x01" * 8

    def _child(self, scope: str, name: str, kind: int, duration_ns: int) -> Span | None:
        if self.made >= self.limit:
            return None
        span = self.b.span(self.service, scope)
        self.made += 1
        span.trace_id, span.span_id, span.parent_span_id = self.trace_id, self._span_id(), self.root.span_id
        span.name, span.kind, span.flags = name, kind, 0x100 | 0x1
        self.cursor += self.rng.randint(1, 5) * MS
        span.start_time_unix_nano = self.cursor
        self.cursor += duration_ns
        span.end_time_unix_nano = self.cursor
        return span

    def write(self) -> None:
        self.root = self.b.span(self.service, "http")
        self.made = 1
        self.root.trace_id, self.root.span_id = self.trace_id, self._span_id()
        self.root.kind, self.root.flags = Span.SPAN_KIND_SERVER, 0x100 | 0x1
        self.root.start_time_unix_nano = self.start
        self._db_lookup()
        question = self._question()
        if self.kind == "rag":
            self._embeddings(question)
            passages = self._retrieval()
            self._chat(question, passages, last=True)
        elif self.kind == "agent":
            for round_ in range(self.rounds):
                self._chat(question, [], last=False)
                self._tool(round_)
            self._chat(question, [], last=True)
        else:
            self._chat(question, [text.paragraph(self.rng, 12)], last=True)
        self._finish_root()
        self.stats.traces += 1
        self.stats.spans += self.made
        self.stats.shapes[self.kind] += 1
        self.stats.error_traces += self.error is not None
        self.stats.slow_traces += self.slow

    def _question(self) -> str:
        question = self.rng.choice(text.QUESTIONS)
        if self.rng.random() < self.f.profile.pii_rate:
            kind, sentence = text.pii(self.rng)
            self.stats.pii[kind] += 1
            question = f"{question} {sentence}"
        return question

    def _finish_root(self) -> None:
        root = self.root
        root.end_time_unix_nano = self.cursor + self.rng.randint(1, 8) * MS
        status = self.error[2] if self.error else 200
        route = ROUTES[self.kind]
        root.name = f"POST {route}"
        for key, value in (
            ("http.request.method", "POST"), ("http.route", route), ("url.path", route), ("url.scheme", "https"),
            ("http.response.status_code", status), ("server.address", "api.internal.example.com"),
            ("client.address", f"10.{self.rng.randrange(256)}.{self.rng.randrange(256)}.{self.rng.randrange(1, 255)}"),
            ("user_agent.original", "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_5) AppleWebKit/605.1.15 Safari/605.1.15"),
            ("gen_ai.conversation.id", self.conversation), ("user.id", self.user),
        ):
            _attr(root, key, value)
        if self.error:
            root.status.code, root.status.message = Status.STATUS_CODE_ERROR, f"upstream LLM call failed: {self.error[0]}"

    def _db_lookup(self) -> None:
        span = self._child("db", "SELECT conversations", Span.SPAN_KIND_CLIENT, self.rng.randint(2, 25) * MS)
        if span is None:
            return
        for key, value in (("db.system.name", "postgresql"), ("db.namespace", "app"), ("db.operation.name", "SELECT"),
                           ("db.collection.name", "conversations"), ("server.address", "db.internal"), ("server.port", 5432),
                           ("db.query.text", "SELECT id, title, messages FROM conversations WHERE id = $1 AND user_id = $2")):
            _attr(span, key, value)

    def _embeddings(self, question: str) -> None:
        model = self.rng.choice(self.f.embedding_models)
        span = self._child("llm", f"embeddings {model.request}", Span.SPAN_KIND_CLIENT, self.rng.randint(40, 220) * MS)
        if span is None:
            return
        self.stats.llm_spans += 1
        for key, value in (("gen_ai.operation.name", "embeddings"), ("gen_ai.provider.name", model.provider),
                           ("gen_ai.request.model", model.request), ("gen_ai.response.model", model.response),
                           ("gen_ai.usage.input_tokens", max(1, len(question) // 4)),
                           ("gen_ai.embeddings.dimension.count", 1536), ("server.address", _host(model.provider))):
            _attr(span, key, value)

    def _retrieval(self) -> list[str]:
        passages = [text.paragraph(self.rng, 2) for _ in range(3)]
        span = self._child("app", "vector_search documents", Span.SPAN_KIND_CLIENT, self.rng.randint(15, 140) * MS)
        if span is None:
            return passages
        _attr(span, "db.system.name", "pgvector")
        _attr(span, "retrieval.top_k", len(passages))
        for n, passage in enumerate(passages):
            _attr(span, f"retrieval.documents.{n}.document.id", f"kb-{self.rng.randrange(100_000):05d}")
            _attr(span, f"retrieval.documents.{n}.document.score", round(0.92 - 0.07 * n - self.rng.random() * 0.05, 4))
            _attr(span, f"retrieval.documents.{n}.document.content", passage[:240])
        return passages

    def _tool(self, round_: int) -> None:
        name, args, result = self.rng.choice(text.TOOLS)
        n, d = self.rng.randrange(1_000_000), self.rng.randint(1, 9)
        span = self._child("app", f"execute_tool {name}", Span.SPAN_KIND_INTERNAL, self.rng.randint(30, 900) * MS)
        if span is None:
            return
        for key, value in (("gen_ai.operation.name", "execute_tool"), ("gen_ai.tool.name", name),
                           ("gen_ai.tool.type", "function"), ("gen_ai.tool.call.id", f"call_{self.rng.getrandbits(64):016x}"),
                           ("gen_ai.tool.call.arguments", args.format(n=n, d=d)),
                           ("gen_ai.tool.call.result", result.format(n=n, d=d))):
            _attr(span, key, value)

    def _chat(self, question: str, context: list[str], last: bool) -> None:
        rng, model = self.rng, self.model
        answer = text.paragraph(rng, rng.randint(2, 5)) if last else ""
        output_tokens = max(8, len(answer) // 4) if last else rng.randint(15, 40)
        fails = last and self.failing and self.error is None
        duration = (rng.randint(250, 700) + output_tokens * rng.randint(8, 20)) * MS
        if self.slow:
            duration *= rng.randint(8, 20)
        span = self._child("llm", f"chat {model.request}", Span.SPAN_KIND_CLIENT, duration)
        if span is None:
            return
        self.stats.llm_spans += 1
        system = rng.choice(text.SYSTEM_PROMPTS)
        user = question + ("\n\nContext:\n" + "\n".join(f"[{i}] {c}" for i, c in enumerate(context)) if context else "")
        input_tokens = (len(system) + len(user)) // 4 + rng.randint(20, 400)
        history = [
            {"role": "user", "parts": [{"type": "text", "content": rng.choice(text.QUESTIONS)}]},
            {"role": "assistant", "parts": [{"type": "text", "content": text.paragraph(rng, 2)}]},
        ] if rng.random() < 0.6 else []
        messages = [*history, {"role": "user", "parts": [{"type": "text", "content": user}]}]
        for key, value in (
            ("gen_ai.operation.name", "chat"), ("gen_ai.provider.name", model.provider),
            ("gen_ai.request.model", model.request), ("gen_ai.request.temperature", rng.choice((0.0, 0.2, 0.7))),
            ("gen_ai.request.max_tokens", rng.choice((512, 1024, 4096))), ("gen_ai.request.top_p", 1.0),
            ("gen_ai.request.frequency_penalty", 0.0),
            ("gen_ai.conversation.id", self.conversation), ("server.address", _host(model.provider)),
            ("server.port", 443), ("gen_ai.output.type", "text"),
            ("gen_ai.system_instructions", json.dumps([{"type": "text", "content": system}])),
            ("gen_ai.input.messages", json.dumps(messages)),
        ):
            _attr(span, key, value)
        if fails:
            self._fail(span)
            return
        reply = answer or json.dumps({"tool_call": True})
        out = [{"role": "assistant", "parts": [{"type": "text", "content": reply}], "finish_reason": rng.choice(FINISH) if last else "tool_calls"}]
        for key, value in (
            ("gen_ai.response.model", model.response), ("gen_ai.response.id", f"chatcmpl-{rng.getrandbits(96):024x}"),
            ("gen_ai.response.finish_reasons", [out[0]["finish_reason"]]),
            ("gen_ai.usage.input_tokens", input_tokens), ("gen_ai.usage.output_tokens", output_tokens),
            ("gen_ai.output.messages", json.dumps(out)),
        ):
            _attr(span, key, value)
        if rng.random() < 0.3:
            _attr(span, "gen_ai.usage.cache_read.input_tokens", min(input_tokens, 1024))

    def _fail(self, span: Span) -> None:
        self.error = self.rng.choice(ERRORS)
        error_type, message, _status = self.error
        span.status.code, span.status.message = Status.STATUS_CODE_ERROR, message
        _attr(span, "error.type", error_type)
        event = span.events.add()
        event.name, event.time_unix_nano = "exception", span.end_time_unix_nano
        for key, value in (("exception.type", f"openai.{error_type}"), ("exception.message", message),
                           ("exception.stacktrace", f"Traceback (most recent call last):\n  File \"app/llm.py\", line 88, in "
                            f"complete\n    response = await client.chat.completions.create(**request)\nopenai.{error_type}: {message}")):
            _attr(event, key, value)
        self.stats.events += 1


def _host(provider: str) -> str:
    return {"openai": "api.openai.com", "anthropic": "api.anthropic.com", "gcp.gemini": "generativelanguage.googleapis.com",
            "mistral_ai": "api.mistral.ai"}.get(provider, f"api.{provider}.com")
