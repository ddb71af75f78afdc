"""`observatory up`: migrate, then run the collector, the writer and the API as children.

Their output is shown line by line behind a coloured name. SIGINT or SIGTERM stops the
three with SIGTERM (each flushes and acknowledges what it holds) and waits for them; a
second one kills them at once. If one of them dies, the others are stopped too and the
exit code says so.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import sys

from api.settings import ApiSettings
from cli.errors import Failure
from cli.migrate import migrate_up
from cli.settings import CliSettings
from collector.settings import CollectorSettings
from common.settings import SettingsError, load
from storage.settings import StorageSettings

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


async def _start(services: tuple[str, ...], colour: bool) -> tuple[dict[str, asyncio.subprocess.Process], list[asyncio.Task]]:
    children: dict[str, asyncio.subprocess.Process] = {}
    pumps = []
    for name in services:
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", name, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
            env=os.environ.copy(),  # the children read the same configuration this process was given
        )
        children[name] = proc
        assert proc.stdout is not None
        pumps.append(asyncio.create_task(_pump(name, proc.stdout, colour)))
    return children, pumps


async def _stop(children: dict[str, asyncio.subprocess.Process], hurry: asyncio.Event) -> None:
    """SIGTERM each, wait for them to flush; a second Ctrl-C or the timeout kills what is left."""
    for proc in children.values():
        if proc.returncode is None:
            proc.send_signal(signal.SIGTERM)
    all_done = asyncio.gather(*(p.wait() for p in children.values()))
    hurried = asyncio.create_task(hurry.wait())
    await asyncio.wait([all_done, hurried], timeout=STOP_TIMEOUT, return_when=asyncio.FIRST_COMPLETED)
    hurried.cancel()
    for name, proc in children.items():
        if proc.returncode is None:
            why = "asked twice" if hurry.is_set() else f"did not stop in {STOP_TIMEOUT:g}s"
            print(f"observatory up: {name} {why}; killing it (unacknowledged entries will be redelivered)", file=sys.stderr)
            proc.kill()
    await all_done


async def run_stack(services: tuple[str, ...] = SERVICES) -> int:
    children, pumps = await _start(services, sys.stdout.isatty())
    stop, hurry = asyncio.Event(), asyncio.Event()

    def on_signal() -> None:
        (hurry if stop.is_set() else stop).set()

    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, on_signal)
    waits = {asyncio.create_task(p.wait()): n for n, p in children.items()}
    stopper = asyncio.create_task(stop.wait())
    done, _ = await asyncio.wait([*waits, stopper], return_when=asyncio.FIRST_COMPLETED)
    stop.set()
    failed = [waits[t] for t in done if t in waits]
    if failed:
        print(f"observatory up: {', '.join(failed)} exited; stopping the others", file=sys.stderr)
    else:
        print("observatory up: stopping (waiting for services to flush; Ctrl-C again to kill them)", file=sys.stderr)
    await _stop(children, hurry)
    await asyncio.gather(*pumps, return_exceptions=True)
    stopper.cancel()
    return 1 if failed else 0


def _banner(services: tuple[str, ...]) -> str | None:
    """Where each service listens, from the settings the children will read."""
    try:
        collector, api = load(CollectorSettings), load(ApiSettings)
        storage = load(StorageSettings)
    except SettingsError:
        return None  # the child with the bad variable will say which, with its own message
    lines = {
        "collector": f"collector  OTLP gRPC :{collector.collector_otlp_grpc_port}, OTLP HTTP :{collector.collector_otlp_http_port}, "
                     f"ops :{collector.collector_metrics_port}",
        "storage": f"storage    ops :{storage.storage_metrics_port}",
        "api": f"api        HTTP :{api.api_port}, ops :{api.api_metrics_port}",
    }
    return "\n".join(lines[name] for name in services)


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "up", help="migrate, then run collector, storage and api locally",
        description="Apply migrations, then run the three services as child processes with prefixed logs. "
        "Ctrl-C stops them cleanly.",
        epilog="examples:\n  LOG_FORMAT=pretty observatory up\n  observatory up --only collector --only storage",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--no-migrate", action="store_true", help="start without applying migrations")
    parser.add_argument("--only", action="append", choices=SERVICES, metavar="SERVICE",
                        help="run only this service (repeatable: collector, storage, api)")
    parser.set_defaults(handler=_run)


def _run(args: argparse.Namespace, settings: CliSettings) -> int:
    services = tuple(name for name in SERVICES if not args.only or name in args.only)
    if not args.no_migrate:
        migrate_up(settings)
    banner = _banner(services)
    if banner:
        print(banner, flush=True)
    try:
        return asyncio.run(run_stack(services))
    except OSError as exc:
        raise Failure(f"cannot start the services: {exc}") from None
