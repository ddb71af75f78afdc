"""A deterministic corpus of ordinary span values that are not PII, by category, and the
false-positive rate of redaction over it.

    .venv/bin/python -m tests.collector.ordinary_corpus    # prints the table recorded in docs
"""

from __future__ import annotations

import json
import random
import uuid
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path

from collector.processors.redaction import RedactionConfig, Redactor
from common.otlp import attributes
from tests.collector.spans import batch, kvs, request, value

FIXTURES = Path(__file__).resolve().parent / "fixtures"

PER_CATEGORY = 5000
WORDS = (
    "the model returned a summary of the quarterly report and the user asked for a shorter "
    "version with bullet points retry after the rate limit reset tool call failed parsing json "
    "output schema validated latency budget exceeded cache hit ratio improved after deploy"
).split()


def _when(rng: random.Random) -> datetime:
    return datetime(2020, 1, 1, tzinfo=timezone.utc) + timedelta(seconds=rng.randint(0, 8 * 365 * 86400), microseconds=rng.randint(0, 999_999))


def _prose(rng: random.Random) -> str:
    words = [rng.choice(WORDS) for _ in range(rng.randint(8, 60))]
    for _ in range(rng.randint(0, 3)):  # numbers as prose has them
        words.insert(rng.randrange(len(words)), rng.choice([
            f"{rng.randint(1, 100)}%", f"${rng.randint(1, 9999)}.{rng.randint(0, 99):02d}", f"{rng.randint(1, 12)}pm",
            f"{rng.randint(1, 5000)}", f"step {rng.randint(1, 20)}/{rng.randint(20, 40)}", f"{rng.randint(1, 31)} March {rng.randint(1990, 2030)}",
        ]))
    return " ".join(words)


CATEGORIES: dict[str, Callable[[random.Random], str | int]] = {
    "timestamps (ISO 8601, RFC 3339, offsets)": lambda r: rng_choice(r, [
        _when(r).isoformat(), _when(r).strftime("%Y-%m-%dT%H:%M:%S.%fZ"), _when(r).astimezone(timezone(timedelta(hours=r.randint(-11, 12)))).isoformat(),
        _when(r).strftime("%Y-%m-%d %H:%M:%S"), _when(r).strftime("%a, %d %b %Y %H:%M:%S GMT"), _when(r).strftime("%d/%m/%Y %H:%M"),
    ]),
    "epoch timestamps (s, ms, ns; strings and ints)": lambda r: rng_choice(r, [
        int(_when(r).timestamp()), int(_when(r).timestamp() * 1000), int(_when(r).timestamp() * 1e9) + r.randint(0, 999),
        str(int(_when(r).timestamp() * 1000)), str(int(_when(r).timestamp() * 1e9) + r.randint(0, 999)),
    ]),
    "UUIDs": lambda r: rng_choice(r, [str(uuid.UUID(int=r.getrandbits(128), version=4)), uuid.UUID(int=r.getrandbits(128)).hex.upper()]),
    "trace and span ids (hex)": lambda r: rng_choice(r, [r.randbytes(16).hex(), r.randbytes(8).hex(), f"00-{r.randbytes(16).hex()}-{r.randbytes(8).hex()}-01"]),
    "versions (semver, 4-part build numbers)": lambda r: rng_choice(r, [
        f"{r.randint(0, 30)}.{r.randint(0, 50)}.{r.randint(0, 200)}", f"v{r.randint(0, 9)}.{r.randint(0, 30)}.{r.randint(0, 99)}-rc.{r.randint(1, 9)}",
        f"{r.randint(1, 20)}.{r.randint(0, 9)}.{r.randint(1000, 30000)}.{r.randint(0, 9999)}", f"python {r.randint(3, 3)}.{r.randint(8, 13)}.{r.randint(0, 20)}",
        f"{r.randint(0, 9)}.{r.randint(0, 9)}.{r.randint(0, 9)}.{r.randint(0, 9)}",
    ]),
    "token counts and sizes": lambda r: rng_choice(r, [r.randint(0, 2_000_000), f"{r.randint(0, 200_000)} tokens", f"{r.randint(1, 10**9)} bytes"]),
    "numeric ids (orders, snowflakes, 10-19 digits)": lambda r: rng_choice(r, [
        str(r.randint(10**9, 10**10)), str(r.randint(10**15, 10**16)), str(r.randint(10**17, 9 * 10**18)), r.randint(10**17, 9 * 10**18),
    ]),
    "durations, clock times, ratios": lambda r: rng_choice(r, [
        f"{r.randint(0, 23):02d}:{r.randint(0, 59):02d}:{r.randint(0, 59):02d}", f"took {r.randint(1, 90000)}ms", f"{r.random():.6f}",
        f"{r.randint(0, 23):02d}:{r.randint(0, 59):02d}", f"{r.randint(1, 99)}:{r.randint(1, 99)}",
    ]),
    "hashes, paths, URLs, hosts": lambda r: rng_choice(r, [
        r.randbytes(20).hex(), r.randbytes(32).hex(), f"/var/lib/app/{r.randint(1, 999)}/cache-{r.randbytes(4).hex()}.json",
        f"https://api.example.com/v1/items/{r.randint(1, 10**6)}?page={r.randint(1, 50)}", f"chat-api-{r.randbytes(5).hex()}-{r.randbytes(3).hex()}",
        f"sha256:{r.randbytes(32).hex()}", f"std::vector<int>::size {r.randint(1, 99)}",
    ]),
    "prose with numbers": _prose,
}


# Values real instrumentations and HTTP semantic conventions put on LLM spans, with the keys
# they go under (the key decides the rules: a token count is not a token).
SEMCONV_VALUES: dict[str, Callable[[random.Random], str | int | float]] = {
    "gen_ai.server.time_to_first_token": lambda r: round(r.uniform(0.05, 3), 6),
    "gen_ai.server.time_per_output_token": lambda r: round(r.uniform(0.001, 0.2), 6),
    "gen_ai.server.request.duration": lambda r: round(r.uniform(0.2, 30), 6),
    "gen_ai.request.seed": lambda r: r.randint(0, 2**31),
    "gen_ai.usage.input_tokens": lambda r: r.randint(1, 200_000),
    "server.address": lambda r: rng_choice(r, ["127.0.0.1", "localhost", "10.0.3.17", "api.openai.com", "192.168.1.20", "52.152.96.252"]),
    "server.port": lambda r: rng_choice(r, [443, 8000, 11434, 4318]),
    "url.full": lambda r: f"http://{rng_choice(r, ['127.0.0.1', '10.1.2.3', '52.152.96.252'])}:{r.randint(1024, 65000)}/v1/chat/completions",
    "http.url": lambda r: f"http://127.0.0.1:{r.randint(1024, 65000)}/v1/embeddings",
    "gen_ai.openai.api_base": lambda r: rng_choice(r, ["http://localhost:11434/v1", "https://api.openai.com/v1", "http://127.0.0.1:8000/v1"]),
    "http.response.status_code": lambda r: rng_choice(r, [200, 429, 500]),
    "gen_ai.response.id": lambda r: f"chatcmpl-{r.randbytes(12).hex()}",
    "gen_ai.conversation.id": lambda r: str(uuid.UUID(int=r.getrandbits(128))),
    "service.instance.id": lambda r: str(uuid.UUID(int=r.getrandbits(128))),
    "host.ip": lambda r: rng_choice(r, ["10.0.3.17", "172.17.0.2", "127.0.0.1", "fe80::1c2d:3eff:fe4f:5a6b"]),
}


def recorded_spans() -> Iterator[tuple[str, dict]]:
    """(library, span) from the fixtures recorded by fixtures/record_genai.py."""
    for path in sorted(FIXTURES.glob("genai_*.json")):
        document = json.loads(path.read_text())
        for span in document["spans"]:
            yield document["library"], span


def recorded_false_positives(redactor: Redactor) -> dict[str, tuple[int, int, list[str]]]:
    """library → (values changed, values, examples): every recorded span through the stage."""
    results: dict[str, tuple[int, int, list[str]]] = {}
    for library, span in recorded_spans():
        req = request({"name": span["name"], "attributes": span["attributes"]}, resource=span["resource"])
        target = req.resource_spans[0].scope_spans[0].spans[0]
        for event in span["events"]:
            target.events.add(name=event["name"]).attributes.extend(kvs(event["attributes"]))
        before = _texts(req)
        redactor.process(batch(req))
        after = _texts(req)
        changed = [k for k, v in before.items() if after.get(k) != v]
        c, t, examples = results.get(f"recorded GenAI spans ({library})", (0, 0, []))
        examples.extend(f"{k}={before[k]!r}" for k in changed[: 3 - len(examples)])
        results[f"recorded GenAI spans ({library})"] = (c + len(changed), t + len(before), examples)
    return results


def _texts(req) -> dict[str, object]:  # type: ignore[no-untyped-def]
    rs = req.resource_spans[0]
    span = rs.scope_spans[0].spans[0]
    out: dict[str, object] = {f"resource:{k}": v for k, v in attributes(rs.resource.attributes).items() if not k.startswith("redaction.")}
    out.update({f"span:{k}": v for k, v in attributes(span.attributes).items() if not k.startswith("redaction.")})
    for index, event in enumerate(span.events):
        out[f"event{index}:name"] = event.name
        out.update({f"event{index}:{k}": v for k, v in attributes(event.attributes).items()})
    out["span:name"] = span.name
    return out


def semconv_false_positives(redactor: Redactor, per_key: int = 200, seed: int = 2026) -> tuple[int, int, list[str]]:
    """Known keys with their usual values (numbers, endpoints, ids): (changed, values, examples)."""
    rng = random.Random(seed)
    changed, total, examples = 0, 0, []
    for key, make in SEMCONV_VALUES.items():
        for _ in range(per_key):
            sample = make(rng)
            req = request({"attributes": {key: sample}})
            redactor.process(batch(req))
            total += 1
            if attributes(req.resource_spans[0].scope_spans[0].spans[0].attributes).get(key) != sample:
                changed += 1
                if len(examples) < 3:
                    examples.append(f"{key}={sample!r}")
    return changed, total, examples


def rng_choice(rng: random.Random, options: list[str | int]) -> str | int:
    return options[rng.randrange(len(options))]


# The keys values of a category go under (others under "value"): ids live under id keys.
CATEGORY_KEYS = {
    "numeric ids (orders, snowflakes, 10-19 digits)": ("order.id", "message_id", "tweet.id", "app.request_id", "customerId"),
    "token counts and sizes": ("gen_ai.usage.input_tokens", "http.response.body.size", "value"),
}


def corpus(per_category: int = PER_CATEGORY, seed: int = 2026) -> Iterator[tuple[str, str | int]]:
    for category, _key, sample in keyed_corpus(per_category, seed):
        yield category, sample


def keyed_corpus(per_category: int = PER_CATEGORY, seed: int = 2026) -> Iterator[tuple[str, str, str | int]]:
    rng = random.Random(seed)
    for category, make in CATEGORIES.items():
        keys = CATEGORY_KEYS.get(category, ("value",))
        for index in range(per_category):
            yield category, keys[index % len(keys)], make(rng)


def false_positives(redactor: Redactor | None = None, per_category: int = PER_CATEGORY) -> dict[str, tuple[int, int, list[str]]]:
    """category → (values changed, values, a few examples of what changed)."""
    redactor = redactor or Redactor(RedactionConfig())
    results: dict[str, tuple[int, int, list[str]]] = {}
    for category, key, sample in keyed_corpus(per_category):
        changed, total, examples = results.get(category, (0, 0, []))
        scan = redactor.new_scan()
        redactor.redact_value(value(sample), key, scan, redactor._key_plan(key, scan).action)
        hit = bool(scan.tally.rules)
        if hit and len(examples) < 3:
            examples.append(str(sample))
        results[category] = (changed + hit, total + 1, examples)
    return results


def all_false_positives(redactor: Redactor | None = None, per_category: int = PER_CATEGORY) -> dict[str, tuple[int, int, list[str]]]:
    redactor = redactor or Redactor(RedactionConfig())
    results = false_positives(redactor, per_category)
    results["GenAI and HTTP semantic-convention keys (numbers, endpoints, ids)"] = semconv_false_positives(redactor)
    results.update(recorded_false_positives(redactor))
    return results


if __name__ == "__main__":
    results = all_false_positives()
    changed = sum(c for c, _, _ in results.values())
    total = sum(t for _, t, _ in results.values())
    print("| category | values | changed | rate | examples |\n|---|---:|---:|---:|---|")
    for category, (c, t, examples) in results.items():
        print(f"| {category} | {t} | {c} | {100 * c / t:.2f}% | {'; '.join(examples)} |")
    print(f"| **all** | {total} | {changed} | {100 * changed / total:.3f}% | |")
