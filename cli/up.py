"""`observatory up`: migrate, then run the collector, the writer and the API as children.

Their output is shown line by line behind a coloured name. SIGINT or SIGTERM stops the
three with SIGTERM (each flushes and acknowledges what it holds) and waits for them; if
one of them dies, the others are stopped too and the exit code says so.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import sys

from cli.errors import Failure
from cli.migrate import migrate_up
from cli.settings import CliSettings

SERVICES = ("collector", "storage", "api")
COLOURS = {"collector": "\033[36m", "storage": "\033[35m", "api": "\033[33m"}
RESET = "\033[0m"
STOP_TIMEOUT = 30.0


async def _pump(name: str, stream: asyncio.StreamReader, colour: bool) -> None:
    width = max(len(s) for s in SERVICES)
    label = f"{name:<{width}} |"
    if colour:
        label = f"{COLOURS[name]}{label}{RESET}"
    while line := await stream.readline():
        sys.stdout.write(f"{label} {line.decode(errors='replace')}")
        sys.stdout.flush()


async def run_stack(services: tuple[str, ...] = SERVICES) -> int:
    colour = sys.stdout.isatty()
    children: dict[str, asyncio.subprocess.Process] = {}
    pumps = []
    for name in services:
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", name, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
            env=os.environ.copy(),
        )
        children[name] = proc
        assert proc.stdout is not None
        pumps.append(asyncio.create_task(_pump(name, proc.stdout, colour)))

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    waits = {asyncio.create_task(p.wait()): n for n, p in children.items()}
    stopper = asyncio.create_task(stop.wait())
    done, _ = await asyncio.wait([*waits, stopper], return_when=asyncio.FIRST_COMPLETED)
    failed = [waits[t] for t in done if t in waits]
    if failed:
        print(f"observatory up: {', '.join(failed)} exited; stopping the others", file=sys.stderr)
    else:
        print("observatory up: stopping (waiting for services to flush)", file=sys.stderr)
    for proc in children.values():
        if proc.returncode is None:
            proc.send_signal(signal.SIGTERM)
    try:
        await asyncio.wait_for(asyncio.gather(*(p.wait() for p in children.values())), STOP_TIMEOUT)
    except asyncio.TimeoutError:
        for name, proc in children.items():
            if proc.returncode is None:
                print(f"observatory up: {name} did not stop in {STOP_TIMEOUT:g}s; killing it", file=sys.stderr)
                proc.kill()
        await asyncio.gather(*(p.wait() for p in children.values()))
    await asyncio.gather(*pumps, return_exceptions=True)
    stopper.cancel()
    return 1 if failed else 0


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "up", help="migrate, then run collector, storage and api locally",
        description="Apply migrations, then run the three services as child processes with prefixed logs. "
        "Ctrl-C stops them cleanly.",
        epilog="example:\n  LOG_FORMAT=pretty observatory up",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--no-migrate", action="store_true", help="start without applying migrations")
    parser.set_defaults(handler=_run)


def _run(args: argparse.Namespace, settings: CliSettings) -> int:
    if not args.no_migrate:
        migrate_up(settings)
    try:
        return asyncio.run(run_stack())
    except OSError as exc:
        raise Failure(f"cannot start the services: {exc}") from None
