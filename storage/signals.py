"""What the writer does differently per signal, written once: how an entry's body is parsed,
how its items become rows, and which writer stores them. Everything else (consume, batch,
isolate, dead-letter, ack) is the same code for traces, logs and metrics (storage/app.py).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any

import psycopg

from common.signals import LOGS, METRICS, TRACES, Signal
from storage import logs, metric_points
from storage.decode import Rows, parse_request, span_request, span_units
from storage.items import TableRows
from storage.table_writer import TableWriter
from storage.writer import SpanWriter


@dataclass(frozen=True)
class SignalStorage:
    signal: Signal
    parse_request: Callable[[bytes], Any]  # raises UndecodableEntry
    units: Callable[[Any], Iterator[Any]]  # the request's items as row units (or BadSpan)
    rows_of: Callable[[Iterable[Any]], Any]  # units → what the writer takes
    writer: Callable[[psycopg.AsyncConnection, int], Any]  # (connection, retention days) → writer with write(rows)
    item_request: Callable[[bytes, Any], bytes]  # (entry body, an item's place) → a request of that item alone


def _table_writer(module: Any) -> Callable[[psycopg.AsyncConnection, int], TableWriter]:
    return lambda conn, retention_days: TableWriter(conn, module.TABLE, module.COLUMNS, module.TYPES, retention_days)


TRACE_STORAGE = SignalStorage(TRACES, parse_request, span_units, Rows.of, SpanWriter, span_request)
LOG_STORAGE = SignalStorage(LOGS, logs.parse_request, logs.units, TableRows.of, _table_writer(logs), logs.record_request)
METRIC_STORAGE = SignalStorage(METRICS, metric_points.parse_request, metric_points.units, TableRows.of,
                               _table_writer(metric_points), metric_points.point_request)
STORAGES = (TRACE_STORAGE, LOG_STORAGE, METRIC_STORAGE)
