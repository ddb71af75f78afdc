"""A stack seeded with the explorer's known traces, for a look by hand:
`.venv/bin/python -m tests.ui.demo` prints the explorer's URL and an API key, and runs
until Ctrl-C (it creates and drops its own database)."""

from __future__ import annotations

import signal
import tempfile
import uuid
from pathlib import Path

import redis

from tests.conftest import REDIS_URL, create_database, drop_database
from tests.e2e.conftest import start_stack
from tests.ui import seed


def main() -> None:
    signal.signal(signal.SIGTERM, signal.default_int_handler)  # stop the stack and drop the database on SIGTERM too
    prefix = f"obs-demo:{uuid.uuid4().hex[:8]}:"
    database = create_database("obs_demo")
    stack = start_stack(database, prefix, Path(tempfile.mkdtemp()))
    try:
        seed.send(stack.http_url)
        stack.trace(seed.KNOWN.weather_trace, seed.KNOWN.weather_spans)
        print(f"explorer: http://127.0.0.1:{stack.api_port}/  key: {stack.api_key}", flush=True)
        stack.api.proc.wait()
    except KeyboardInterrupt:
        pass
    finally:
        stack.stop()
        drop_database(database.name)
        forget_keys(prefix)



def forget_keys(prefix: str) -> None:
    client = redis.Redis.from_url(REDIS_URL)
    keys = list(client.scan_iter(match=f"{prefix}*", count=1000))
    if keys:
        client.delete(*keys)
    client.close()


if __name__ == "__main__":
    main()
