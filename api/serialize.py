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
        "flags": row["flags"],
        "scope": {
            "name": row["scope_name"], "version": row["scope_version"], "attributes": row["scope_attributes"] or {},
            "schema_url": row["scope_schema_url"], "dropped_attributes_count": row["scope_dropped_attributes_count"] or 0,
        },
        "resource_schema_url": row["resource_schema_url"],
        "resource_dropped_attributes_count": row["resource_dropped_attributes_count"] or 0,
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
        "exact_values": row["exact_values"] or {},
    }


def event(row: dict[str, Any]) -> dict[str, Any]:
    return {
        "time": rfc3339_nanos(row["time_unix_nano"]),
        "time_unix_nano": row["time_unix_nano"],
        "name": row["name"],
        "attributes": row["attributes"],
        "dropped_attributes_count": row["dropped_attributes_count"],
        "exact_values": row["exact_values"] or {},
    }


def link(row: dict[str, Any]) -> dict[str, Any]:
    return {
        "trace_id": _hex(row["linked_trace_id"]),
        "span_id": _hex(row["linked_span_id"]),
        "trace_state": row["trace_state"],
        "flags": row["flags"],
        "attributes": row["attributes"],
        "dropped_attributes_count": row["dropped_attributes_count"],
        "exact_values": row["exact_values"] or {},
    }


def times(start_ns: int, end_ns: int) -> dict[str, Any]:
    return {
        "start_time": rfc3339_nanos(start_ns),
        "end_time": rfc3339_nanos(end_ns),
        "start_time_unix_nano": start_ns,
        "end_time_unix_nano": end_ns,
        "duration_ns": end_ns - start_ns,
        "duration_ms": (end_ns - start_ns) / 1e6,
    }


def trace_summary(row: dict[str, Any]) -> dict[str, Any]:
    """One row of a trace search."""
    return {
        "trace_id": _hex(row["trace_id"]),
        "root": {"span_id": _hex(row["root_span_id"]), "name": row["root_name"], "service_name": row["root_service"]},
        **times(row["start_ns"], row["end_ns"]),
        "span_count": row["span_count"],
        "error_count": row["error_count"],
        "services": list(row["services"]),
        "input_tokens": row["input_tokens"],
        "output_tokens": row["output_tokens"],
        "cost_usd": _number(row["cost_usd"]) or 0.0,
    }


def window(start_ns: int, end_ns: int) -> dict[str, Any]:
    return {
        "start": rfc3339_nanos(start_ns), "end": rfc3339_nanos(end_ns),
        "start_unix_nano": start_ns, "end_unix_nano": end_ns,
    }


def usage_row(row: dict[str, Any], groups: tuple[str, ...]) -> dict[str, Any]:
    count = row["span_count"]
    percentiles = row.get("percentiles")
    answer: dict[str, Any] = {}
    if row.get("bucket") is not None:
        bucket_ns = int(row["bucket"].timestamp()) * 1_000_000_000
        answer.update(bucket=rfc3339_nanos(bucket_ns), bucket_unix_nano=bucket_ns)
    answer.update({g: row[g] for g in groups})
    answer.update(
        request_count=count,
        error_count=row["error_count"],
        error_rate=row["error_count"] / count if count else 0.0,
        input_tokens=row["input_tokens"],
        output_tokens=row["output_tokens"],
        cost_usd=_number(row["cost_usd"]) or 0.0,
    )
    if "percentiles" in row:
        p = percentiles or [None, None, None]
        answer["latency_ms"] = {
            "p50": _ms(p[0]), "p95": _ms(p[1]), "p99": _ms(p[2]),
            "avg": _ms(float(row["duration_sum_ns"]) / count) if count else None,
            "max": _ms(row["duration_max_ns"]),
        }
    return answer


def _ms(nanos: float | int | Decimal | None) -> float | None:
    return None if nanos is None else float(nanos) / 1e6
