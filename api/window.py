"""Time windows and keyset cursors, checked against the API's limits."""

from __future__ import annotations

import base64
import hashlib
import json
import time
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any

from api.problems import bad_parameter

NANOS = 1_000_000_000
_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)


def as_datetime(unix_nano: int) -> datetime:
    """The timestamptz a span's start time_unix_nano was stored as (truncated to microseconds)."""
    return _EPOCH + timedelta(microseconds=unix_nano // 1000)


@dataclass(frozen=True)
class Window:
    start_ns: int  # inclusive
    end_ns: int  # exclusive

    @property
    def start(self) -> datetime:
        return as_datetime(self.start_ns)

    @property
    def end(self) -> datetime:
        # The stored timestamptz is truncated, so a span at end_ns - 1 may sit at this microsecond.
        return as_datetime(self.end_ns + 999)

    @property
    def seconds(self) -> float:
        return (self.end_ns - self.start_ns) / NANOS


def window(values: Mapping[str, Any], default_seconds: int, max_seconds: int) -> Window:
    end = values.get("end")
    end = end if end is not None else time.time_ns()
    start = values.get("start")
    start = start if start is not None else max(0, end - default_seconds * NANOS)
    if start >= end:
        raise bad_parameter("start", "must be before end")
    if end - start > max_seconds * NANOS:
        raise bad_parameter("start", f"the window may span at most {max_seconds} seconds, this one spans {(end - start) / NANOS:.0f}")
    return Window(start, end)


def check_limit(values: Mapping[str, Any], maximum: int) -> int:
    limit = int(values["limit"])
    if limit > maximum:
        raise bad_parameter("limit", f"must be at most {maximum}, got {limit}")
    return limit


def fingerprint(values: Mapping[str, Any]) -> str:
    """What a cursor is bound to: every parameter but the cursor and the page size."""
    kept = {k: v for k, v in values.items() if k not in ("cursor", "limit")}
    text = json.dumps(kept, sort_keys=True, default=lambda v: v.hex() if isinstance(v, bytes) else str(v))
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def encode_cursor(key: list[Any], values: Mapping[str, Any], span: Window) -> str:
    # The window is pinned in the cursor: with a default ("last hour") window, later pages
    # must not slide along with the clock, or rows would be skipped or repeated.
    doc = {"k": key, "q": fingerprint(values), "w": [span.start_ns, span.end_ns]}
    raw = json.dumps(doc, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str, values: Mapping[str, Any], shape: tuple[type, ...]) -> tuple[list[Any], Window]:
    """The keyset position and window a cursor holds; 400 when it is damaged or from another query."""
    try:
        doc = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
        key, bound, (start, end) = doc["k"], doc["q"], doc["w"]
        ok = isinstance(key, list) and len(key) == len(shape) and all(isinstance(v, t) for v, t in zip(key, shape))
        ok = ok and isinstance(start, int) and isinstance(end, int) and 0 <= start < end
    except (ValueError, TypeError, KeyError):
        ok = False
    if not ok:
        raise bad_parameter("cursor", "is not a cursor this API made")
    if bound != fingerprint(values):
        raise bad_parameter("cursor", "belongs to a search with other parameters; keep them unchanged while paging")
    return key, Window(start, end)


def page(values: Mapping[str, Any], default_seconds: int, max_seconds: int, shape: tuple[type, ...]) -> tuple[Window, list[Any] | None]:
    """The window and keyset position of one page of a search."""
    if values.get("cursor") is None:
        return window(values, default_seconds, max_seconds), None
    key, pinned = decode_cursor(values["cursor"], values, shape)
    if pinned.end_ns - pinned.start_ns > max_seconds * NANOS:
        raise bad_parameter("cursor", "is not a cursor this API made")
    return pinned, key
