"""The screenshots of docs/EXPLORER.md, made the way the browser tests make theirs:
`.venv/bin/python -m tests.ui.docs_screenshots` starts a stack on a fresh database, sends
the known traces of tests/ui/seed.py and a day of generated traffic (`observatory seed`),
and writes docs/img/explorer-*.png. Needs chromium and chromedriver."""

from __future__ import annotations

import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import redis

from tests.conftest import REDIS_URL, create_database, drop_database
from tests.e2e.conftest import start_stack
from tests.ui import seed
from tests.ui.browser import chromium

IMAGES = Path(__file__).resolve().parents[2] / "docs" / "img"


def main() -> None:
    prefix = f"obs-docs:{uuid.uuid4().hex[:8]}:"
    database = create_database("obs_docs")
    stack = start_stack(database, prefix, Path(tempfile.mkdtemp()))
    driver = None
    try:
        subprocess.run([sys.executable, "-m", "cli", "seed", "--count", "6000", "--days", "1", "--services", "4", "--quiet",
                        "--end", time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() - 900)),
                        "--endpoint", stack.grpc_target], env=stack.env, check=True)
        seed.send(stack.http_url)
        stack.trace(seed.KNOWN.weather_trace, seed.KNOWN.weather_spans)
        time.sleep(2)  # let the writer catch up with the generated traffic
        driver = chromium()
        driver.set_window_size(1280, 900)
        base = f"http://127.0.0.1:{stack.api_port}/ui/"
        driver.get(base + "#/signin")
        driver.execute_script("sessionStorage.setItem('observatory.apiKey', arguments[0])", stack.api_key)
        IMAGES.mkdir(parents=True, exist_ok=True)
        for name, fragment, ready, scroll in (
            ("search", "#/traces?range=1h", "#trace-results", None),
            ("trace", f"#/trace/{seed.KNOWN.weather_trace}?span={seed.KNOWN.weather_llm_span}", "#conversation", None),
            ("conversation", f"#/trace/{seed.KNOWN.weather_trace}?span={seed.KNOWN.weather_llm_span}", "#conversation", "#llm-cost"),
            ("usage", "#/usage?range=24h", "#chart-latency polyline", None),
        ):
            driver.get(base + fragment)
            deadline = time.monotonic() + 20
            while not driver.execute_script("return document.querySelector(arguments[0]) !== null", ready):
                if time.monotonic() > deadline:
                    raise SystemExit(f"{name}: {ready} did not appear")
                time.sleep(0.2)
            if scroll:
                driver.execute_script("document.querySelector(arguments[0]).scrollIntoView({block: 'start'})", scroll)
            time.sleep(0.3)
            driver.save_screenshot(str(IMAGES / f"explorer-{name}.png"))
            print(f"wrote docs/img/explorer-{name}.png")
    finally:
        if driver is not None:
            driver.quit()
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
