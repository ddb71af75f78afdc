"""Planted PII for the storage-wide check: every detector kind, in every place a span can
carry text, each value unique and findable again by a pattern of its kind.

A value is "found" in the database when its kind's pattern matches the stored text and the
match, normalized (digits only for cards and phones), is one of the planted values.
"""

from __future__ import annotations

import base64
import random
import re
import string
import unicodedata
from collections.abc import Callable
from dataclasses import dataclass, field

import orjson
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from common.otlp import key_value
from tests.collector.ordinary_corpus import corpus

ALNUM = string.ascii_letters + string.digits


def _digits(rng: random.Random, n: int) -> str:
    return "".join(rng.choice(string.digits) for _ in range(n))


def _luhn(body: str) -> str:
    for check in string.digits:
        total = 0
        for i, ch in enumerate(reversed(body + check)):
            d = int(ch) * (2 if i % 2 else 1)
            total += d - 9 if d > 9 else d
        if total % 10 == 0:
            return body + check
    raise AssertionError("unreachable")


def _card(rng: random.Random) -> str:
    return _luhn("4" + _digits(rng, 14))


def _grouped(digits: str, sep: str) -> str:
    return sep.join(digits[i:i + 4] for i in range(0, len(digits), 4))


# kind → (make a value, pattern that finds values of the kind, normalize a match)
def _only_digits(text: str) -> str:
    return re.sub(r"\D", "", unicodedata.normalize("NFKC", text))


def _iban(rng: random.Random) -> str:
    bban = _digits(rng, 18)
    check = 98 - int("".join(str(int(c, 36)) for c in bban + "DE00")) % 97
    compact = f"DE{check:02d}{bban}"
    return " ".join(compact[i:i + 4] for i in range(0, len(compact), 4))


def _full_width(text: str) -> str:
    return "".join(chr(ord(c) - 48 + 0xFF10) if c.isdigit() else c for c in text)


def _first(pattern: str, text: str) -> str:
    match = re.search(pattern, text)
    return match.group(0) if match else text


def _nanp(rng: random.Random) -> str:
    return f"{rng.randint(2, 9)}{_digits(rng, 2)}{rng.randint(2, 9)}{_digits(rng, 6)}"


KINDS: dict[str, tuple[Callable[[random.Random], str | int], str, Callable[[str], str]]] = {
    "email": (lambda r: f"{''.join(r.choices(string.ascii_lowercase, k=8))}.{r.randrange(10**6)}@planted-{r.randrange(999)}.example.com",
              r"[a-z]{8}\.[0-9]+@planted-[0-9]+\.example\.com", str),
    "phone_us": (lambda r: f"({r.randint(201, 989)}) {r.randint(201, 989)}-{_digits(r, 4)}",
                 r"\(\d{3}\) \d{3}-\d{4}", _only_digits),
    "phone_intl": (lambda r: f"+44 20 {_digits(r, 4)} {_digits(r, 4)}", r"\+44 20 \d{4} \d{4}", _only_digits),
    "ssn": (lambda r: f"{r.randint(100, 665):03d}-{r.randint(10, 99):02d}-{r.randint(1000, 9999):04d}", r"\b\d{3}-\d{2}-\d{4}\b", str),
    "card_bare": (_card, r"\b4\d{15}\b", _only_digits),
    "card_spaced": (lambda r: _grouped(_card(r), " "), r"\b4\d{3}[ -]\d{4}[ -]\d{4}[ -]\d{4}\b", _only_digits),
    "card_dashed": (lambda r: _grouped(_card(r), "-"), r"\b4\d{3}[ -]\d{4}[ -]\d{4}[ -]\d{4}\b", _only_digits),
    "card_int": (lambda r: int(_card(r)), r"\b4\d{15}\b", _only_digits),
    # Public addresses: loopback and private ones are kept by default (REDACTION_KEEP_PRIVATE_IPS).
    "ipv4": (lambda r: f"81.{r.randint(10, 250)}.{r.randint(10, 250)}.{r.randint(10, 250)}", r"\b81\.\d{2,3}\.\d{2,3}\.\d{2,3}\b", str),
    "ipv6": (lambda r: f"2001:db8:{r.randrange(1, 0xffff):x}:{r.randrange(1, 0xffff):x}::{r.randrange(1, 0xffff):x}",
             r"2001:db8:[0-9a-f]+:[0-9a-f]+::[0-9a-f]+", str),
    "openai_key": (lambda r: "sk-proj-" + "".join(r.choices(ALNUM, k=40)), r"sk-proj-[A-Za-z0-9]{40}", str),
    "aws_key": (lambda r: "AKIA" + "".join(r.choices(string.ascii_uppercase + string.digits, k=16)), r"AKIA[0-9A-Z]{16}", str),
    "bearer": (lambda r: "Bearer " + "".join(r.choices(ALNUM, k=32)), r"Bearer [A-Za-z0-9]{32}", str),
    "jwt": (lambda r: "eyJhbGciOiJIUzI1NiJ9.eyJ" + "".join(r.choices(ALNUM, k=24)) + "." + "".join(r.choices(ALNUM, k=30)),
            r"eyJhbGciOiJIUzI1NiJ9\.eyJ[A-Za-z0-9]{24}\.[A-Za-z0-9]{30}", str),
    "email_urlencoded": (lambda r: f"{''.join(r.choices(string.ascii_lowercase, k=8))}.{r.randrange(10**6)}%40planted-{r.randrange(999)}.example.org",
                         r"[a-z]{8}\.[0-9]+%40planted-[0-9]+\.example\.org", str),
    "email_idn": (lambda r: f"jörg.{r.randrange(10**6)}@müller-{r.randrange(999)}.de", r"jörg\.[0-9]+@müller-[0-9]+\.de", str),
    "card_dotted": (lambda r: _grouped(_card(r), "."), r"\b4\d{3}\.\d{4}\.\d{4}\.\d{4}\b", _only_digits),
    "card_fullwidth": (lambda r: _full_width(_grouped(_card(r), " ")), r"４[０-９]{3} [０-９]{4} [０-９]{4} [０-９]{4}", _only_digits),
    "phone_bare": (lambda r: f"call me at {_nanp(r)}", r"\b[2-9]\d{2}[2-9]\d{6}\b", _only_digits),
    "iban": (_iban, r"DE\d{2}(?: \d{4}){4} \d{2}", lambda s: s.replace(" ", "")),
    "basic_auth": (lambda r: "Authorization: Basic " + base64.b64encode(f"user{r.randrange(10**6)}:{''.join(r.choices(ALNUM, k=14))}".encode()).decode(),
                   r"dXNlc[A-Za-z0-9+/]{16,}={0,2}", lambda s: _first(r"dXNlc[A-Za-z0-9+/]{16,}={0,2}", s)),
    "url_credentials": (lambda r: f"https://user{r.randrange(10**6)}:{''.join(r.choices(ALNUM, k=12))}@db-{r.randrange(99)}.example.net/x",
                        r"user[0-9]+:[A-Za-z0-9]{12}", lambda s: _first(r"user[0-9]+:[A-Za-z0-9]{12}", s)),
    "private_key": (lambda r: "-----BEGIN RSA PRIVATE KEY-----\nMIIE" + "".join(r.choices(ALNUM, k=48)) + "\n-----END RSA PRIVATE KEY-----",
                    r"MIIE[A-Za-z0-9]{48}", lambda s: re.search(r"MIIE[A-Za-z0-9]{48}", s).group(0)),  # type: ignore[union-attr]
}

POSITIONS = (
    "resource", "scope", "span", "span_array", "span_kvlist", "event_message", "event_stacktrace",
    "link", "status_message", "llm_prompt", "llm_messages_json", "llm_completion",
    # Every other text that is stored (issue 14).
    "span_name", "event_name", "attribute_key", "kvlist_key", "scope_name", "scope_version", "trace_state",
    "link_trace_state", "service_name", "genai_key", "instance_id", "bytes_value",
)


@dataclass
class Planted:
    needles: dict[str, set[str]] = field(default_factory=dict)  # kind → normalized planted values
    clean: dict[str, str] = field(default_factory=dict)  # span id hex → ordinary value planted beside it
    combinations: set[tuple[str, str]] = field(default_factory=set)

    def add(self, kind: str, value: str | int) -> None:
        self.needles.setdefault(kind, set()).add(KINDS[kind][2](str(value)))


def build(spans: int, per_request: int = 200, seed: int = 7) -> tuple[list[ExportTraceServiceRequest], Planted]:
    rng = random.Random(seed)
    planted = Planted()
    clean_values = [v for _category, v in corpus(per_category=max(1, spans // 10 + 1), seed=seed)]
    kinds = list(KINDS)
    requests = []
    made = 0
    base_ns = 1_795_000_000_000_000_000
    while made < spans:
        req = ExportTraceServiceRequest()
        for _ in range(min(per_request, spans - made)):
            # One resource and scope a span, so that resource and scope fields can carry one value each.
            rs = req.resource_spans.add()
            rs.resource.attributes.append(key_value("service.name", "pii-check"))
            ss = rs.scope_spans.add()
            ss.scope.name = "pii-check"
            kind = kinds[made % len(kinds)]
            position = POSITIONS[(made // len(kinds)) % len(POSITIONS)]
            value = KINDS[kind][0](rng)
            planted.add(kind, value)
            planted.combinations.add((kind, position))
            span = ss.spans.add(trace_id=rng.randbytes(16), span_id=rng.randbytes(8), name="handle request",
                                start_time_unix_nano=base_ns + made, end_time_unix_nano=base_ns + made + 1_000_000)
            clean = clean_values[made % len(clean_values)]
            planted.clean[span.span_id.hex()] = str(clean)
            span.attributes.append(key_value("app.clean", clean))
            _plant(rs, ss, span, position, value)
            made += 1
        requests.append(req)
    return requests, planted


def _plant(rs, ss, span, position: str, value: str | int) -> None:  # type: ignore[no-untyped-def]
    text = str(value)
    if position == "resource":
        rs.resource.attributes.append(key_value("host.owner", value))
    elif position == "scope":
        ss.scope.attributes.append(key_value("scope.note", value))
    elif position == "span":
        span.attributes.append(key_value("user.note", value))
    elif position == "span_array":
        span.attributes.append(key_value("app.list", ["first", value]))
    elif position == "span_kvlist":
        span.attributes.append(key_value("app.map", {"contact": value}))
    elif position == "event_message":
        span.events.add(name="exception", time_unix_nano=span.start_time_unix_nano,
                        attributes=[key_value("exception.message", f"failed for {text}")])
    elif position == "event_stacktrace":
        span.events.add(name="exception", time_unix_nano=span.start_time_unix_nano,
                        attributes=[key_value("exception.stacktrace", f"Traceback:\n  File x.py\nValueError: {text}")])
    elif position == "link":
        span.links.add(trace_id=bytes(15) + b"\x01", span_id=bytes(7) + b"\x01", attributes=[key_value("link.note", value)])
    elif position == "status_message":
        span.status.code = 2
        span.status.message = f"upstream rejected {text}"
    elif position == "llm_prompt":
        span.attributes.append(key_value("gen_ai.prompt.0.content", f"Hi, please help. {text} is mine."))
    elif position == "llm_messages_json":
        messages = [{"role": "user", "parts": [{"type": "text", "content": f"my details: {text}"}]}]
        span.attributes.append(key_value("gen_ai.input.messages", orjson.dumps(messages).decode()))
    elif position == "llm_completion":
        span.attributes.append(key_value("gen_ai.completion.0.content", f"Noted: {text}."))
    elif position == "span_name":
        span.name = f"lookup {text}"
    elif position == "event_name":
        span.events.add(name=f"sent to {text}", time_unix_nano=span.start_time_unix_nano)
    elif position == "attribute_key":
        span.attributes.append(key_value(f"note {text}", "x"))
    elif position == "kvlist_key":
        span.attributes.append(key_value("app.map", {"outer": {f"by {text}": 1}}))
    elif position == "scope_name":
        ss.scope.name = f"scope {text}"
    elif position == "scope_version":
        ss.scope.version = text
    elif position == "trace_state":
        span.trace_state = f"vendor={text}"
    elif position == "link_trace_state":
        span.links.add(trace_id=bytes(15) + b"\x02", span_id=bytes(7) + b"\x02", trace_state=f"vendor={text}")
    elif position == "service_name":
        rs.resource.attributes[0].value.string_value = f"svc {text}"
    elif position == "genai_key":
        span.attributes.append(key_value("gen_ai.request.model", f"model for {text}"))
    elif position == "instance_id":
        rs.resource.attributes.append(key_value("service.instance.id", text))
    else:
        span.attributes.append(key_value("app.blob", f"raw {text}".encode()))


NUMERIC_KINDS = ("phone_us", "phone_intl", "card_bare", "card_spaced", "card_dashed", "card_int", "card_dotted", "card_fullwidth", "phone_bare", "iban")
_DIGIT_RUN = re.compile(r"[0-9０-９][0-9０-９ .\-()+]{6,40}[0-9０-９]")


def found(text: str, planted: Planted) -> dict[str, set[str]]:
    """kind → planted values that appear in `text`, in their own form or, for numbers, as
    their digits in any form (separators dropped, full-width digits, inside longer runs)."""
    hits: dict[str, set[str]] = {}
    for kind, (_make, pattern, normalize) in KINDS.items():
        values = {normalize(m) for m in re.findall(pattern, text)} & planted.needles.get(kind, set())
        if values:
            hits[kind] = values
    digit_runs = {_only_digits(m) for m in _DIGIT_RUN.findall(text)}
    numbers = {re.sub(r"\D", "", v) for kind in NUMERIC_KINDS for v in planted.needles.get(kind, set())}
    numbers = {n for n in numbers if len(n) >= 8}
    lengths = {len(n) for n in numbers}
    leaked = {run[i:i + n] for run in digit_runs for n in lengths for i in range(len(run) - n + 1)} & numbers
    if leaked:
        hits["digits"] = leaked
    return hits
