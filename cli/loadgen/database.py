"""Generated traces straight into the database, for volumes OTLP would take too long to send.

The requests are the ones `send` would send, turned into rows by the writer's own
storage.decode.request_rows and stored by storage.writer.SpanWriter (COPY into staging,
then INSERT … ON CONFLICT DO NOTHING), so seeded rows are exactly what the pipeline would
have stored. With jobs > 1 the plan is cut into chunks of whole traces that worker
processes build and write over their own connections: building and decoding is Python
work that one core cannot do as fast as PostgreSQL takes the rows.
"""

from __future__ import annotations

import asyncio
import multiprocessing
import multiprocessing.util
from collections.abc import Callable, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from dataclasses import dataclass

import psycopg

from cli.loadgen.traces import Profile, Stats, TraceFactory
from storage.decode import Rows, request_rows
from storage.writer import SpanWriter

CHUNK_SPANS = 5_000  # spans per COPY transaction: large enough to amortise, small enough to show progress


@dataclass(frozen=True)
class Chunk:
    first: int          # index of its first trace in the plan
    sizes: list[int]    # spans of each of its traces

    @property
    def spans(self) -> int:
        return sum(self.sizes)


def chunks(sizes: list[int], spans_per_chunk: int = CHUNK_SPANS) -> Iterator[Chunk]:
    start, total = 0, 0
    for index, size in enumerate(sizes):
        total += size
        if total >= spans_per_chunk:
            yield Chunk(start, sizes[start:index + 1])
            start, total = index + 1, 0
    if start < len(sizes):
        yield Chunk(start, sizes[start:])


class ChunkWriter:
    """Builds and writes chunks over one connection and one event loop."""

    def __init__(self, profile: Profile, dsn: str) -> None:
        self.factory = TraceFactory(profile)
        self.loop = asyncio.new_event_loop()
        self.conn = self.loop.run_until_complete(
            psycopg.AsyncConnection.connect(dsn, autocommit=True, application_name="observatory-seed")
        )
        self.writer = SpanWriter(self.conn)

    def write(self, chunk: Chunk) -> tuple[int, Stats]:
        """(span rows inserted, what was generated)."""
        stats = Stats()
        rows = Rows()
        for batch in self.factory.batches(chunk.sizes, chunk.first, stats):
            rows.extend(request_rows(batch.request))
        return self.loop.run_until_complete(self.writer.write(rows)), stats

    def close(self) -> None:
        self.loop.run_until_complete(self.conn.close())
        self.loop.close()


_worker: ChunkWriter | None = None


def _start_worker(profile: Profile, dsn: str) -> None:
    global _worker
    _worker = ChunkWriter(profile, dsn)
    # Pool workers leave through os._exit, past atexit; multiprocessing still runs these.
    multiprocessing.util.Finalize(None, _worker.close, exitpriority=10)


def _write_in_worker(chunk: Chunk) -> tuple[int, Stats]:
    assert _worker is not None
    return _worker.write(chunk)


def write_all(
    profile: Profile, sizes: list[int], dsn: str, jobs: int = 1,
    on_written: Callable[[int], None] | None = None,
) -> tuple[int, Stats]:
    """Write the plan's traces; returns (span rows inserted, what was generated)."""
    inserted, stats = 0, Stats()

    def done(result: tuple[int, Stats]) -> None:
        nonlocal inserted
        inserted += result[0]
        stats.add(result[1])
        if on_written is not None:
            on_written(result[1].spans)

    if jobs <= 1:
        writer = ChunkWriter(profile, dsn)
        try:
            for chunk in chunks(sizes):
                done(writer.write(chunk))
        finally:
            writer.close()
        return inserted, stats
    context = multiprocessing.get_context("fork")
    with ProcessPoolExecutor(jobs, mp_context=context, initializer=_start_worker, initargs=(profile, dsn)) as pool:
        pending: set[Future] = set()
        try:
            for chunk in chunks(sizes):
                if len(pending) >= jobs * 2:  # a bounded queue: results, not chunks, pile up
                    finished, pending = wait(pending, return_when=FIRST_COMPLETED)
                    for future in finished:
                        done(future.result())
                pending.add(pool.submit(_write_in_worker, chunk))
            for future in wait(pending).done:
                done(future.result())
        except BaseException:
            pool.shutdown(wait=True, cancel_futures=True)
            raise
    return inserted, stats
