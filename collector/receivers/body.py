"""Reading an OTLP/HTTP request body: Content-Encoding and the size limit, bomb-safe.

aiohttp's own decompression is switched off for the receiver (auto_decompress=False) so
that the limit is enforced here on the decompressed bytes while they are produced: zlib is
asked for at most the bytes still allowed, so a gzip bomb costs at most the limit in
memory, never its expanded size.
"""

from __future__ import annotations

import zlib

from aiohttp import web

CHUNK_BYTES = 64 * 1024
# Content-Encoding -> zlib wbits (gzip framing, zlib framing as HTTP's "deflate" means).
DECODERS = {"gzip": 16 + zlib.MAX_WBITS, "x-gzip": 16 + zlib.MAX_WBITS, "deflate": zlib.MAX_WBITS}
IDENTITY = ("", "identity")


class BodyError(Exception):
    """The body cannot be used; `status` is the HTTP answer and `reason` the metric label."""

    def __init__(self, message: str, status: int, reason: str) -> None:
        super().__init__(message)
        self.status = status
        self.reason = reason


def too_large(limit: int) -> BodyError:
    return BodyError(f"request body is larger than {limit} bytes after decompression (COLLECTOR_HTTP_MAX_BODY_BYTES)", 413, "too_large")


def check_encoding(request: web.Request) -> str:
    """The request's Content-Encoding, lower-cased; BodyError when we cannot decode it."""
    encoding = request.headers.get("Content-Encoding", "").strip().lower()
    if encoding not in IDENTITY and encoding not in DECODERS:
        raise BodyError(f"unsupported Content-Encoding {encoding!r}; use gzip, deflate or identity", 400, "encoding")
    return encoding


async def read_body(request: web.Request, limit: int) -> bytearray:
    """The decoded body, at most `limit` bytes, else BodyError (413 / 400)."""
    encoding = check_encoding(request)
    if request.content_length is not None and request.content_length > limit:
        raise too_large(limit)  # refuse before reading anything
    inflater = _Inflater(DECODERS[encoding], limit) if encoding not in IDENTITY else None
    body = bytearray()
    received = 0
    async for chunk in request.content.iter_chunked(CHUNK_BYTES):
        received += len(chunk)
        if received > limit:
            raise too_large(limit)
        if inflater is None:
            body += chunk
        else:
            inflater.feed(chunk, body)
    if inflater is not None:
        inflater.finish()
    return body


class _Inflater:
    """Streaming gzip/deflate with an output budget; several gzip members are one body."""

    def __init__(self, wbits: int, limit: int) -> None:
        self.wbits = wbits
        self.limit = limit
        self.zlib = zlib.decompressobj(wbits)

    def feed(self, chunk: bytes, out: bytearray) -> None:
        while chunk:
            try:
                # At most one byte over the budget: enough to know it was exceeded.
                out += self.zlib.decompress(chunk, self.limit + 1 - len(out))
            except zlib.error as exc:
                raise BodyError(f"request body is not valid {self._name()} data: {exc}", 400, "encoding") from None
            if len(out) > self.limit:
                raise too_large(self.limit)
            chunk = self.zlib.unconsumed_tail
            if self.zlib.eof:
                chunk = self.zlib.unused_data  # a next gzip member, or nothing
                if chunk:
                    self.zlib = zlib.decompressobj(self.wbits)

    def finish(self) -> None:
        if not self.zlib.eof:
            raise BodyError(f"request body is truncated {self._name()} data", 400, "encoding")

    def _name(self) -> str:
        return "deflate" if self.wbits == zlib.MAX_WBITS else "gzip"
