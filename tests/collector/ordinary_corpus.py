"""A deterministic corpus of ordinary span values that are not PII, by category, and the
false-positive rate of redaction over it.

    .venv/bin/python -m tests.collector.ordinary_corpus    # prints the table recorded in docs
"""

from __future__ import annotations

import random
import uuid
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta, timezone

from collector.processors.redaction import RedactionConfig, Redactor
from tests.collector.spans import value

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


def rng_choice(rng: random.Random, options: list[str | int]) -> str | int:
    return options[rng.randrange(len(options))]


def corpus(per_category: int = PER_CATEGORY, seed: int = 2026) -> Iterator[tuple[str, str | int]]:
    rng = random.Random(seed)
    for category, make in CATEGORIES.items():
        for _ in range(per_category):
            yield category, make(rng)


def false_positives(redactor: Redactor | None = None, per_category: int = PER_CATEGORY) -> dict[str, tuple[int, int, list[str]]]:
    """category → (values changed, values, a few examples of what changed)."""
    redactor = redactor or Redactor(RedactionConfig())
    results: dict[str, tuple[int, int, list[str]]] = {}
    for category, sample in corpus(per_category):
        changed, total, examples = results.get(category, (0, 0, []))
        scan = redactor.new_scan()
        redactor.redact_value(value(sample), "value", scan)
        hit = bool(scan.tally.rules)
        if hit and len(examples) < 3:
            examples.append(str(sample))
        results[category] = (changed + hit, total + 1, examples)
    return results


if __name__ == "__main__":
    results = false_positives()
    changed = sum(c for c, _, _ in results.values())
    total = sum(t for _, t, _ in results.values())
    print("| category | values | changed | rate | examples |\n|---|---:|---:|---:|---|")
    for category, (c, t, examples) in results.items():
        print(f"| {category} | {t} | {c} | {100 * c / t:.2f}% | {'; '.join(examples)} |")
    print(f"| **all** | {total} | {changed} | {100 * changed / total:.3f}% | |")
