"""The batch stage: stream entries decoded span by span into batches of bounded size.

A batch holds at most BATCH_SIZE spans and about BATCH_MAX_BYTES of rows, however large
one entry is: an entry of 200,000 spans is taken in parts over several batches, and
acknowledged only once the batch holding its last part has committed (batches commit in
order; a crash part-way re-reads the entry, and the parts already stored are skipped as
duplicates). A span that cannot be decoded is set apart (`Batch.bad`) with its entry, for
the dead-letter stream; the rest of its entry is kept.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from storage import metrics
from storage.consumer import Delivery, parse
from storage.decode import BadSpan, SpanRows

if TYPE_CHECKING:
    from storage.signals import SignalStorage


@dataclass(eq=False)
class Entry:
    """A stream entry being stored; `failed` once any of its spans could not be written this
    time (it is then not acknowledged, and read again)."""

    delivery: Delivery
    failed: bool = False


@dataclass
class Batch:
    units: list[SpanRows] = field(default_factory=list)
    owners: list[Entry] = field(default_factory=list)  # the entry of each unit
    bad: list[tuple[Entry, BadSpan]] = field(default_factory=list)
    done: list[Entry] = field(default_factory=list)  # entries whose last span is in this batch
    size: int = 0
    started: float | None = None

    @property
    def spans(self) -> int:
        return len(self.units)

    def __bool__(self) -> bool:
        return bool(self.units or self.bad or self.done)


class OpenEntry:
    """An entry decoded lazily: its spans are taken a part at a time."""

    def __init__(self, entry: Entry, storage: SignalStorage | None = None) -> None:
        if storage is None:
            from storage.signals import TRACE_STORAGE as storage  # noqa: PLC0415 - signals imports the writers
        self.entry = entry
        started = time.perf_counter()
        try:
            self._request = storage.parse_request(parse(entry.delivery).body)  # UndecodableEntry / ValueError
        finally:
            metrics.DECODE_SECONDS.observe(time.perf_counter() - started)
        self._units: Iterator[Any] = storage.units(self._request)

    def fill(self, batch: Batch, max_spans: int, max_bytes: int) -> bool:
        """Move spans into the batch until it is full; True when the entry is exhausted."""
        units, owners, entry = batch.units, batch.owners, self.entry
        for unit in self._units:
            if isinstance(unit, BadSpan):
                batch.bad.append((entry, unit))
                continue
            units.append(unit)
            owners.append(entry)
            batch.size += unit.size
            if len(units) >= max_spans or batch.size >= max_bytes:
                break
        else:
            batch.done.append(entry)
            return True
        return False
