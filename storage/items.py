"""Rows of the signals stored one table each (logs, metric data points): the shared parts.

Like spans (storage/decode.py), a request is decoded one item at a time into a unit holding
its row, about how many bytes it takes and where it came from (to rebuild a one-item request
for a dead letter); an item that cannot be decoded becomes a BadSpan-like unit with the
reason. `TableRows` is what the table writer (storage/table_writer.py) COPYs.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from common.otlp import any_value
from storage.decode import _attributes, _json, _text, pg_micros  # noqa: F401 - re-exported for the signal decoders

ID_BYTES = 16


def digest(*parts: bytes) -> bytes:
    """A 16-byte key of the parts (BLAKE2b, in C): the same item always gets the same key."""
    hasher = hashlib.blake2b(digest_size=ID_BYTES)
    for part in parts:
        hasher.update(len(part).to_bytes(4, "little"))
        hasher.update(part)
    return hasher.digest()


def json_value(value: Any) -> bytes:
    """Any JSON value (an AnyValue made plain) as JSONB text, NULs replaced."""
    return _json(value)  # orjson.dumps takes any value; the NUL rule is the same


def plain(value: Any) -> Any:
    return any_value(value)


@dataclass(slots=True)
class ItemRows:
    """One item's row and about how many bytes it holds."""

    row: tuple[Any, ...]
    size: int
    where: tuple[int, ...]  # the item's place in its request (for its dead letter's body)


@dataclass
class TableRows:
    rows: list[tuple[Any, ...]] = field(default_factory=list)
    min_ns: int | None = None
    max_ns: int | None = None
    time_at: int = 1  # the column holding each row's exact time in unix nanoseconds

    def __len__(self) -> int:
        return len(self.rows)

    def add(self, unit: ItemRows) -> None:
        self.rows.append(unit.row)
        ns = unit.row[self.time_at]
        if self.min_ns is None or ns < self.min_ns:
            self.min_ns = ns
        if self.max_ns is None or ns > self.max_ns:
            self.max_ns = ns

    @classmethod
    def of(cls, units: Iterable[ItemRows]) -> "TableRows":
        rows = cls()
        for unit in units:
            rows.add(unit)
        return rows


def text(value: str) -> str | None:
    return _text(value)
