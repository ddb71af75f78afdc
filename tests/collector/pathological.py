"""Pathological texts for redaction: each unit repeated to a given size, dense with what a
detector's pattern or check has to look at (candidates, failing prefixes, true matches).

    .venv/bin/python -m tests.collector.pathological    # CPU µs per KB, the table in bench/RESULTS.md
"""

from __future__ import annotations

import sys
import time

from collector.processors.redaction import RedactionBudgetExceeded, RedactionConfig, Redactor
from tests.collector.spans import batch, request

UNITS = {
    "issue 14's freeze (a:b:c:d)": "a:b:c:d ",
    "digits and spaces": "1 ",
    "card-like groups": "4111 1111 ",
    "dotted numbers": "1.2.3.4.",
    "true e-mails": "a@b.io ",
    "colons": "::",
    "hex and ::": "ab::cd::",
    "e-mail local part, no @": "a.b-c_d%e+f",
    "phone context words": "call me at ",
    "@ runs": "@",
    "URL-encoded e-mails": "%40a.bc",
    "dotted card groups": "4111.1111.",
    "Basic credentials": "Basic QUFBQUFBQUE= ",
    "true IPv4 addresses": "81.2.69.160 ",
    "full-width digits (NFKC)": "４１１１ ",
    "IBAN prefixes": "DE89 3704 ",
    "JWT prefixes": "eyJhbGciOi.",
    "bearer words": "Bearer ",
    "PEM headers": "-----BEGIN ",
    "long token": "x",
}


def cpu_seconds_for(redactor: Redactor, text: str) -> tuple[float, str]:
    """CPU seconds to redact one span carrying `text`, and the outcome (ok or refused)."""
    req = request({"attributes": {"x": text}})
    started = time.process_time()
    try:
        redactor.process(batch(req))
        outcome = "ok"
    except RedactionBudgetExceeded:
        outcome = "refused (REDACTION_WORK_LIMIT)"
    return time.process_time() - started, outcome


def texts(size: int) -> dict[str, str]:
    return {name: unit * (size // len(unit)) for name, unit in UNITS.items()}


if __name__ == "__main__":
    size = int(sys.argv[1]) if len(sys.argv) > 1 else 1_000_000
    redactor = Redactor(RedactionConfig())
    print("| text (repeated to 1 MB) | CPU s | µs per KB | outcome |\n|---|---:|---:|---|")
    for name, text in texts(size).items():
        seconds, outcome = cpu_seconds_for(redactor, text)
        kb = len(text.encode()) / 1024
        print(f"| {name} | {seconds:.3f} | {seconds * 1e6 / kb:.1f} | {outcome} |")
