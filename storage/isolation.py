"""Narrowing a failed write down to the spans at fault.

When the database refuses a batch for its data, the batch is split in halves and each half
written again, recursively, until every refused unit stands alone. Units come in entry
order, so this narrows to the entry first and then to the span; a batch of n units with k
poison units takes about 2·k·log2(n) writes, and every other unit is stored.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from typing import Generic, TypeVar

T = TypeVar("T")


class Refused(Exception):
    """The database (or the encoding of rows for it) refused these units for their content."""


class Failed(Generic[T]):
    __slots__ = ("unit", "error")

    def __init__(self, unit: T, error: Refused) -> None:
        self.unit = unit
        self.error = error


async def isolate(units: Sequence[T], write: Callable[[Sequence[T]], Awaitable[None]]) -> list[Failed[T]]:
    """Write `units`, splitting on Refused; returns the units refused alone, in order.

    `write` stores a sequence in one transaction or raises Refused (anything else, an
    outage for instance, propagates: `write` is expected to have retried those already).
    """
    failed: list[Failed[T]] = []

    async def attempt(chunk: Sequence[T]) -> None:
        try:
            await write(chunk)
            return
        except Refused as exc:
            if len(chunk) == 1:
                failed.append(Failed(chunk[0], exc))
                return
        middle = len(chunk) // 2
        await attempt(chunk[:middle])
        await attempt(chunk[middle:])

    if units:
        await attempt(units)
    return failed
