"""Rows to JSON answers: lowercase hex ids, RFC 3339 times with nanoseconds, enum names."""

from __future__ import annotations

from datetime import datetime, timezone
from decimal import Decimal
from typing import Any

from common.otlp import SPAN_KINDS, STATUS_CODES


def rfc3339_nanos(unix_nano: int) -> str:
    seconds, nanos = divmod(unix_nano, 1_000_000_000)
    stamp = datetime.fromtimestamp(seconds, tz=timezone.utc).strftime("%Y-%m-%dT%H:%M:%S")
    return f"{stamp}.{nanos:09d}Z"


def _hex(raw: bytes | None) -> str | None:
    return bytes(raw).hex() if raw else None


def _number(value: Decimal | None) -> float | None:
    return None if value is None else float(value)


def span(row: dict[str, Any]) -> dict[str, Any]:
    kind = row["kind"]
    status = row["status_code"]
    return {
        "trace_id": _hex(row["trace_id"]),
        "span_id": _hex(row["span_id"]),
        "parent_span_id": _hex(row["parent_span_id"]),
        "trace_state": row["trace_state"],
        "name": row["name"],
        "kind": SPAN_KINDS[kind] if 0 <= kind < len(SPAN_KINDS) else str(kind),
        "status": {
            "code": STATUS_CODES[status] if 0 <= status < len(STATUS_CODES) else str(status),
            "message": row["status_message"],
        },
        "service_name": row["service_name"],
        "scope": {"name": row["scope_name"], "version": row["scope_version"]},
        "start_time": rfc3339_nanos(row["start_time_unix_nano"]),
        "end_time": rfc3339_nanos(row["end_time_unix_nano"]),
        "start_time_unix_nano": row["start_time_unix_nano"],
        "end_time_unix_nano": row["end_time_unix_nano"],
        "duration_ns": row["duration_ns"],
        "duration_ms": row["duration_ns"] / 1e6,
        "llm": {
            "provider": row["llm_provider"],
            "operation": row["llm_operation"],
            "request_model": row["llm_request_model"],
            "response_model": row["llm_response_model"],
            "input_tokens": row["input_tokens"],
            "output_tokens": row["output_tokens"],
            "total_tokens": row["total_tokens"],
            "cache_read_tokens": row["cache_read_tokens"],
            "cache_write_tokens": row["cache_write_tokens"],
            "reasoning_tokens": row["reasoning_tokens"],
            "cost_input_usd": _number(row["cost_input_usd"]),
            "cost_output_usd": _number(row["cost_output_usd"]),
            "cost_total_usd": _number(row["cost_total_usd"]),
        },
        "attributes": row["attributes"],
        "resource_attributes": row["resource_attributes"],
        "dropped_attributes_count": row["dropped_attributes_count"],
        "dropped_events_count": row["dropped_events_count"],
        "dropped_links_count": row["dropped_links_count"],
    }
