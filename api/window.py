"""Time windows and keyset cursors, checked against the API's limits."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import re
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any

from api.params import MAX_NANOS
from api.problems import bad_parameter

NANOS = 1_000_000_000
EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)


def as_datetime(unix_nano: int) -> datetime:
    """The timestamptz a span's start time_unix_nano was stored as (truncated to microseconds)."""
    return EPOCH + timedelta(microseconds=unix_nano // 1000)


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


# What each keyset value of a cursor must be: the kinds a search's sort key is made of.
_CURSOR_VALUES: dict[str, Callable[[Any], bool]] = {
    "nanos": lambda v: isinstance(v, int) and not isinstance(v, bool) and 0 <= v <= MAX_NANOS,
    "int64": lambda v: isinstance(v, int) and not isinstance(v, bool) and -MAX_NANOS - 1 <= v <= MAX_NANOS,
    "trace_id": lambda v: isinstance(v, str) and _HEX.fullmatch(v) is not None and len(v) == 32,
    "span_id": lambda v: isinstance(v, str) and _HEX.fullmatch(v) is not None and len(v) == 16,
}
_HEX = re.compile(r"[0-9a-f]+")
_SIGNATURE_BYTES = 16


def _sign(secret: bytes, payload: bytes) -> bytes:
    return hmac.new(secret, payload, hashlib.sha256).digest()[:_SIGNATURE_BYTES]


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def encode_cursor(key: list[Any], values: Mapping[str, Any], span: Window | None, secret: bytes) -> str:
    """An opaque, signed cursor: the keyset position, the query it belongs to and the window."""
    # The window is pinned in the cursor: with a default ("last hour") window, later pages
    # must not slide along with the clock, or rows would be skipped or repeated.
    doc = {"k": key, "q": fingerprint(values), "w": None if span is None else [span.start_ns, span.end_ns]}
    payload = json.dumps(doc, separators=(",", ":")).encode()
    return f"{_b64(payload)}.{_b64(_sign(secret, payload))}"


def decode_cursor(
    cursor: str, values: Mapping[str, Any], shape: tuple[str, ...], secret: bytes,
) -> tuple[list[Any], Window | None]:
    """The keyset position and window a cursor holds; 400 when it is damaged, forged or from another query.

    The signature is checked before anything in the cursor is read, so a forged cursor
    never reaches a query; the values are checked again all the same."""
    payload_text, _, signature_text = cursor.partition(".")
    try:
        payload, signature = _unb64(payload_text), _unb64(signature_text)
    except (ValueError, TypeError):
        payload, signature = b"", b""
    if len(signature) != _SIGNATURE_BYTES or not hmac.compare_digest(signature, _sign(secret, payload)):
        raise bad_parameter("cursor", "is not a cursor this API made (damaged, forged, or signed with another CURSOR_SECRET)")
    try:
        doc = json.loads(payload)
        key, bound, pinned = doc["k"], doc["q"], doc["w"]
        ok = isinstance(key, list) and len(key) == len(shape) and all(_CURSOR_VALUES[t](v) for v, t in zip(key, shape))
        if pinned is not None:
            start, end = pinned
            ok = ok and _CURSOR_VALUES["nanos"](start) and _CURSOR_VALUES["nanos"](end) and start < end
    except (ValueError, TypeError, KeyError):
        ok = False
    if not ok:
        raise bad_parameter("cursor", "is not a cursor this API made")
    if bound != fingerprint(values):
        raise bad_parameter("cursor", "belongs to a search with other parameters; keep them unchanged while paging")
    return key, (None if pinned is None else Window(start, end))


def page(
    values: Mapping[str, Any], default_seconds: int, max_seconds: int, shape: tuple[str, ...], secret: bytes,
) -> tuple[Window, list[Any] | None]:
    """The window and keyset position of one page of a search."""
    if values.get("cursor") is None:
        return window(values, default_seconds, max_seconds), None
    key, pinned = decode_cursor(values["cursor"], values, shape, secret)
    if pinned is None or pinned.end_ns - pinned.start_ns > max_seconds * NANOS:
        raise bad_parameter("cursor", "is not a cursor this API made")
    return pinned, key
