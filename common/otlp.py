"""OTLP values as plain Python: AnyValue to JSON-ready values, ids, enum names."""

from __future__ import annotations

import base64
from collections.abc import Iterable
from typing import Any

from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue

SPAN_KINDS = ("unspecified", "internal", "server", "client", "producer", "consumer")
STATUS_CODES = ("unset", "ok", "error")


def any_value(value: AnyValue) -> Any:
    """An AnyValue as a JSON value: arrays as lists, kvlists as objects, bytes as base64."""
    which = value.WhichOneof("value")
    if which == "string_value":
        return value.string_value
    if which == "int_value":
        return value.int_value
    if which == "double_value":
        d = value.double_value
        # JSON has no NaN or infinity; keep them visible as strings rather than fail the batch.
        return d if d == d and d not in (float("inf"), float("-inf")) else str(d)
    if which == "bool_value":
        return value.bool_value
    if which == "array_value":
        return [any_value(v) for v in value.array_value.values]
    if which == "kvlist_value":
        return attributes(value.kvlist_value.values)
    if which == "bytes_value":
        return base64.b64encode(value.bytes_value).decode("ascii")
    return None


_INF = float("inf")


def exact_json(value: AnyValue) -> dict[str, Any] | None:
    """The OTLP/JSON form of a value that any_value's plain JSON cannot hold exactly, else None.

    Inexact in plain JSON (once stored as jsonb and read back): a double with an integral
    value (it would read back as an int), NaN and the infinities (JSON has none), -0.0
    (numeric has no negative zero), bytes (base64 text reads as a string), and a list or map
    holding one of these. A double is given as a JSON number where that is exact, else as the
    string protobuf's JSON mapping allows ("NaN", "Infinity", "-Infinity", "-0.0").
    """
    which = value.WhichOneof("value")
    if which == "double_value":
        d = value.double_value
        return {"doubleValue": _double(d)} if d != d or d in (_INF, -_INF) or d.is_integer() else None
    if which == "bytes_value":
        return {"bytesValue": base64.b64encode(value.bytes_value).decode("ascii")}
    if which == "array_value":
        return otlp_json(value) if any(exact_json(v) is not None for v in value.array_value.values) else None
    if which == "kvlist_value":
        return otlp_json(value) if any(exact_json(kv.value) is not None for kv in value.kvlist_value.values) else None
    return None


def _double(d: float) -> float | str:
    if d != d:
        return "NaN"
    if d in (_INF, -_INF):
        return "Infinity" if d > 0 else "-Infinity"
    if d == 0 and str(d).startswith("-"):
        return "-0.0"
    return d


def otlp_json(value: AnyValue) -> dict[str, Any]:
    """An AnyValue in OTLP/JSON (the protobuf JSON mapping: int64 as a string, bytes as base64)."""
    which = value.WhichOneof("value")
    if which == "string_value":
        return {"stringValue": value.string_value}
    if which == "int_value":
        return {"intValue": str(value.int_value)}
    if which == "double_value":
        return {"doubleValue": _double(value.double_value)}
    if which == "bool_value":
        return {"boolValue": value.bool_value}
    if which == "bytes_value":
        return {"bytesValue": base64.b64encode(value.bytes_value).decode("ascii")}
    if which == "array_value":
        return {"arrayValue": {"values": [otlp_json(v) for v in value.array_value.values]}}
    if which == "kvlist_value":
        return {"kvlistValue": {"values": [{"key": kv.key, "value": otlp_json(kv.value)} for kv in value.kvlist_value.values]}}
    return {}


def attributes(kvs: Iterable[KeyValue]) -> dict[str, Any]:
    return {kv.key: any_value(kv.value) for kv in kvs}


def hex_id(raw: bytes) -> str | None:
    return raw.hex() if raw else None


def parse_hex_id(text: str, length: int) -> bytes:
    """Bytes of a hex trace (16) or span (8) id; ValueError when it is not one."""
    if len(text) != length * 2:
        raise ValueError(f"must be {length * 2} hex characters, got {len(text)}")
    try:
        raw = bytes.fromhex(text)
    except ValueError:
        raise ValueError("must be hexadecimal") from None
    if raw == bytes(length):
        raise ValueError("must not be all zeros")
    return raw


def to_any_value(python: Any) -> AnyValue:
    """A Python value as an AnyValue (the inverse of any_value): lists and tuples become
    arrays, dicts key-value lists, bytes bytes; anything else not a scalar its str()."""
    result = AnyValue()
    if isinstance(python, bool):
        result.bool_value = python
    elif isinstance(python, int):
        result.int_value = python
    elif isinstance(python, float):
        result.double_value = python
    elif isinstance(python, bytes):
        result.bytes_value = python
    elif isinstance(python, (list, tuple)):
        result.array_value.values.extend(to_any_value(v) for v in python)
    elif isinstance(python, dict):
        result.kvlist_value.values.extend(key_value(k, v) for k, v in python.items())
    else:
        result.string_value = str(python)
    return result


def key_value(key: str, python: Any) -> KeyValue:
    return KeyValue(key=key, value=to_any_value(python))
