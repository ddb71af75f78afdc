"""Known spans, events, links and rollup rows written straight into a test database."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from decimal import Decimal
from typing import Any

import psycopg
from psycopg.types.json import Jsonb

from api.window import as_datetime

S = 1_000_000_000
MS = 1_000_000


def ns(text: str) -> int:
    moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    return int(moment.timestamp()) * S


@dataclass
class Span:
    trace_id: str
    span_id: str
    name: str
    start_ns: int
    duration_ns: int
    service_name: str = "svc"
    parent_span_id: str | None = None
    kind: int = 1
    status_code: int = 0
    status_message: str | None = None
    llm_provider: str | None = None
    llm_request_model: str | None = None
    llm_response_model: str | None = None
    input_tokens: int | None = None
    output_tokens: int | None = None
    total_tokens: int | None = None
    cost_total_usd: Decimal | None = None
    attributes: dict[str, Any] = field(default_factory=dict)
    resource_attributes: dict[str, Any] = field(default_factory=dict)

    def row(self) -> dict[str, Any]:
        values = asdict(self)
        start, duration = values.pop("start_ns"), values.pop("duration_ns")
        values.update(
            trace_id=bytes.fromhex(self.trace_id), span_id=bytes.fromhex(self.span_id),
            parent_span_id=bytes.fromhex(self.parent_span_id) if self.parent_span_id else None,
            start_time=as_datetime(start), end_time=as_datetime(start + duration),
            start_time_unix_nano=start, end_time_unix_nano=start + duration, duration_ns=duration,
            attributes=Jsonb(self.attributes),
            resource_attributes=Jsonb(self.resource_attributes or {"service.name": self.service_name}),
        )
        return values


def insert_spans(conn: psycopg.Connection, spans: list[Span]) -> None:
    rows = [s.row() for s in spans]
    columns = list(rows[0])
    statement = f"INSERT INTO spans ({', '.join(columns)}) VALUES ({', '.join(f'%({c})s' for c in columns)})"
    with conn.cursor() as cur:
        cur.executemany(statement, rows)


def insert_event(conn: psycopg.Connection, span: Span, index: int, time_ns: int, name: str, attributes: dict[str, Any]) -> None:
    conn.execute(
        "INSERT INTO span_events (trace_id, span_id, span_start_time, event_index, time, time_unix_nano, name, attributes) "
        "VALUES (%s, %s, %s, %s, %s, %s, %s, %s)",
        (bytes.fromhex(span.trace_id), bytes.fromhex(span.span_id), as_datetime(span.start_ns), index,
         as_datetime(time_ns), time_ns, name, Jsonb(attributes)),
    )


def insert_link(conn: psycopg.Connection, span: Span, index: int, trace_id: str, span_id: str) -> None:
    conn.execute(
        "INSERT INTO span_links (trace_id, span_id, span_start_time, link_index, linked_trace_id, linked_span_id, "
        "trace_state, flags, attributes) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s)",
        (bytes.fromhex(span.trace_id), bytes.fromhex(span.span_id), as_datetime(span.start_ns), index,
         bytes.fromhex(trace_id), bytes.fromhex(span_id), "k=v", 1, Jsonb({"link.kind": "follows"})),
    )


@dataclass
class Rollup:
    minute_ns: int
    service_name: str
    model: str | None
    provider: str | None
    span_count: int
    error_count: int
    input_tokens: int
    output_tokens: int
    cost_usd: Decimal
    duration_sum_ns: int
    duration_max_ns: int


def insert_rollups(conn: psycopg.Connection, rollups: list[Rollup], tier: str = "span_rollups_1m") -> None:
    """Rows straight into a tier (minute_ns is then the row's bucket, of that tier's width)."""
    with conn.cursor() as cur:
        cur.executemany(
            f"INSERT INTO {tier} (bucket, service_name, model, provider, span_count, error_count, input_tokens, "
            "output_tokens, cost_usd, duration_sum_ns, duration_max_ns, cost_other_usd) "
            "VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)",
            # A total without components: its parts are unknown ("other"), as for an SDK's figure.
            [(datetime.fromtimestamp(r.minute_ns // S, tz=timezone.utc), r.service_name, r.model, r.provider, r.span_count,
              r.error_count, r.input_tokens, r.output_tokens, r.cost_usd, r.duration_sum_ns, r.duration_max_ns, r.cost_usd)
             for r in rollups],
        )
