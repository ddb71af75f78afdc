"""Every answer but success, decided once for both protocols and all three signals.

A receiver turns what went wrong (a body it cannot read, a refusal from the exporter or the
in-flight budget, a bug in a stage) into an `Answer`: the HTTP status, the google.rpc code
the gRPC status and the HTTP body's google.rpc.Status carry, the message, the Retry-After
for retryable refusals, and the metric labels. `record` counts and logs it; the receivers
only render it in their protocol (collector/receivers/http.py, grpc.py).

| what                                   | HTTP | gRPC                         | retried by clients |
|----------------------------------------|------|------------------------------|--------------------|
| undecodable body, bad media type, etc. | 400/405/415 | INVALID_ARGUMENT      | no                 |
| body over the size limit               | 413  | RESOURCE_EXHAUSTED, no RetryInfo (grpc's own) | no |
| backlog over MAX_QUEUE_SIZE, in-flight budget spent | 429 + Retry-After | RESOURCE_EXHAUSTED + RetryInfo | yes |
| Redis unreachable                      | 503 + Retry-After | UNAVAILABLE + RetryInfo | yes            |
| a bug in a stage                       | 500  | INTERNAL                     | no                 |
"""

from __future__ import annotations

from dataclasses import dataclass

from google.rpc import code_pb2

from collector import metrics
from collector.exporter import Overloaded, Refused
from common.logging import get_logger

log = get_logger("collector.receivers")


@dataclass(frozen=True)
class Answer:
    http_status: int
    code: int  # google.rpc.Code
    message: str
    outcome: str  # label of observatory_collector_requests_total
    reason: str  # label of the bad-request / refused counters
    retry_after: int | None = None


def bad_request(reason: str, message: str, http_status: int = 400) -> Answer:
    code = code_pb2.RESOURCE_EXHAUSTED if http_status == 413 else code_pb2.INVALID_ARGUMENT
    return Answer(http_status, code, message, "bad_request", reason)


def too_much_work(exc: Exception) -> Answer:
    """A stage's budget (collector.pipeline.TooMuchWork): the same request would fail again."""
    return bad_request("too_much_work", str(exc), 413)


def refused(exc: Refused) -> Answer:
    """The retryable answer: 429 / RESOURCE_EXHAUSTED for overload (backlog or in-flight
    budget), 503 / UNAVAILABLE when Redis cannot take the data; both name when to retry."""
    if isinstance(exc, Overloaded):
        return Answer(429, code_pb2.RESOURCE_EXHAUSTED, str(exc), exc.reason, exc.reason, exc.retry_after)
    return Answer(503, code_pb2.UNAVAILABLE, str(exc), exc.reason, exc.reason, exc.retry_after)


def internal() -> Answer:
    """A bug in a stage costs this request only."""
    return Answer(500, code_pb2.INTERNAL, "internal error while processing the export request", "internal_error", "internal_error")


def record(answer: Answer, protocol: str, signal: str) -> None:
    """Count and log an answer that is not success."""
    metrics.REQUESTS.labels(protocol, answer.outcome).inc()
    if answer.outcome == "bad_request":
        metrics.BAD_REQUESTS.labels(protocol, answer.reason).inc()
        log.info("export request refused", signal=signal, reason=answer.reason, status=answer.http_status, error=answer.message)
    elif answer.outcome == "internal_error":
        log.exception("export failed inside the pipeline", signal=signal)
    else:
        metrics.REFUSED.labels(protocol, answer.reason).inc()
        log.warning("export refused", signal=signal, reason=answer.reason, error=answer.message)
