"""An ExportLogsServiceRequest body into COPY rows for `logs`, one log record at a time.

The body keeps its AnyValue shape as JSON (a string stays a JSON string, a map an object);
the event name is LogRecord.event_name, or the `event.name` attribute older SDKs send.
Each row carries a 16-byte key of its resource, scope and record, so a redelivered entry
meets its stored rows and adds nothing (storage/table_writer.py).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from google.protobuf.message import DecodeError
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.logs.v1.logs_pb2 import LogRecord

from storage.decode import MAX_UNIX_NANO, ROW_OVERHEAD, UNKNOWN_SERVICE, BadSpan, UndecodableEntry
from storage.items import ItemRows, _attributes, digest, json_value, pg_micros, plain, text

TABLE = "logs"
COLUMNS = (
    "time", "time_unix_nano", "observed_time", "observed_time_unix_nano", "trace_id", "span_id", "flags",
    "severity_number", "severity_text", "service_name", "event_name", "body", "attributes",
    "resource_attributes", "scope_name", "scope_version", "scope_attributes", "dropped_attributes_count", "record_id",
)
TYPES = (
    "timestamptz", "int8", "timestamptz", "int8", "bytea", "bytea", "int8",
    "int4", "text", "text", "text", "jsonb", "jsonb",
    "jsonb", "text", "text", "jsonb", "int8", "bytea",
)
KEY = ("record_id", "time")
EVENT_NAME_ATTRIBUTE = "event.name"


def parse_request(body: bytes) -> ExportLogsServiceRequest:
    request = ExportLogsServiceRequest()
    try:
        request.ParseFromString(body)
    except DecodeError as exc:
        raise UndecodableEntry(f"body is not an ExportLogsServiceRequest: {exc}") from None
    return request


def record_request(body: bytes, where: tuple[int, ...]) -> bytes:
    """A request holding only the record at `where` (resource, scope, record index) of the
    request in `body`, with its resource and scope: the body of its dead letter."""
    source = parse_request(body)
    r, s, i = where
    resource_logs = source.resource_logs[r]
    scope_logs = resource_logs.scope_logs[s]
    request = ExportLogsServiceRequest()
    target_resource = request.resource_logs.add(schema_url=resource_logs.schema_url)
    target_resource.resource.CopyFrom(resource_logs.resource)
    target_scope = target_resource.scope_logs.add(schema_url=scope_logs.schema_url)
    target_scope.scope.CopyFrom(scope_logs.scope)
    target_scope.log_records.append(scope_logs.log_records[i])
    return request.SerializeToString()


def units(request: ExportLogsServiceRequest) -> Iterator[ItemRows | BadSpan]:
    for r, resource_logs in enumerate(request.resource_logs):
        try:
            resource = _attributes(resource_logs.resource.attributes)
            service = resource.get("service.name")
            service_name = str(service) if service not in (None, "") else UNKNOWN_SERVICE
            resource_json = json_value(resource)
            resource_key = resource_logs.resource.SerializeToString()
        except Exception as exc:
            reason = f"resource attributes cannot be decoded ({type(exc).__name__})"
            for s, scope_logs in enumerate(resource_logs.scope_logs):
                for i in range(len(scope_logs.log_records)):
                    yield BadSpan(reason, (r, s, i))
            continue
        for s, scope_logs in enumerate(resource_logs.scope_logs):
            scope = scope_logs.scope
            scope_part = (text(scope.name), text(scope.version), json_value(_attributes(scope.attributes)))
            scope_key = scope.SerializeToString()
            for i, record in enumerate(scope_logs.log_records):
                source = (r, s, i)
                try:
                    yield _row(record, service_name, resource_json, scope_part, resource_key + scope_key, source)
                except UndecodableEntry as exc:
                    yield BadSpan(str(exc), source)
                except Exception as exc:
                    yield BadSpan(f"log record cannot be decoded ({type(exc).__name__})", source)


def _row(record: LogRecord, service_name: str, resource_json: bytes, scope: tuple[Any, ...], group_key: bytes,
         source: tuple[int, int, int]) -> ItemRows:
    observed = record.observed_time_unix_nano
    at = record.time_unix_nano or observed
    if at > MAX_UNIX_NANO or observed > MAX_UNIX_NANO:
        raise UndecodableEntry("log record has a time past year 2262, beyond a bigint")
    attrs = _attributes(record.attributes)
    event_name = record.event_name or attrs.get(EVENT_NAME_ATTRIBUTE)
    attributes_json = json_value(attrs)
    body = json_value(plain(record.body)) if record.HasField("body") else None
    row = (
        pg_micros(at), at, pg_micros(observed), observed, record.trace_id or None, record.span_id or None, record.flags,
        record.severity_number, text(record.severity_text), service_name,
        text(str(event_name)) if event_name not in (None, "") else None, body, attributes_json,
        resource_json, *scope, record.dropped_attributes_count,
        digest(group_key, record.SerializeToString(deterministic=True)),
    )
    return ItemRows(row, ROW_OVERHEAD + len(attributes_json) + (len(body) if body else 0), source)
