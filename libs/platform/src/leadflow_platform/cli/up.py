"""`leadflow up`: the whole suite on one machine, stopped cleanly with Ctrl-C.

1. PostgreSQL and nats-server: the ones LEADFLOW_DATABASE_URL / LEADFLOW_NATS_URL name, or
   embedded ones (from their PyPI wheels) on free ports under the data directory.
2. Every schema's migrations and every producer's stream.
3. Each installed service in its own process (`leadflow serve <name>`), then a wait for its
   health check to answer SERVING.
4. A table of what listens where; `<data dir>/stack.json` for other commands.
   With `--traces`, a local trace viewer runs in this process first: an OTLP/gRPC receiver
   every service exports its spans to, and a page of the recent traces.
5. On Ctrl-C or SIGTERM: services stopped (SIGTERM, then SIGKILL after the grace period),
   then nats-server, then PostgreSQL. Services run in their own sessions, so a terminal's
   Ctrl-C reaches only this process and the order above holds.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from rich.console import Console
from rich.table import Table

from leadflow_platform.cli.stack import StackFile
from leadflow_platform.embedded import (
    EmbeddedNats,
    EmbeddedPostgres,
    die_with_parent,
    free_port,
)
from leadflow_platform.grpc.client import health_status
from leadflow_platform.logging import configure_logging
from leadflow_platform.provision import provision_all
from leadflow_platform.service import SUITE, ServiceSpec, discover_services
from leadflow_platform.settings import Settings
from leadflow_platform.traces import SpanStore, TraceReceiver, TraceViewer

console = Console(stderr=True)
HEALTH_TIMEOUT_SECONDS = 90.0
EMBEDDED_STREAM_MAX_BYTES = 512 * 1024**2
# The trace viewer's conventional ports (any free one when taken): OTLP/gRPC's own, and the
# one before the services' metrics ports.
OTLP_PORT = 4317
TRACE_VIEWER_PORT = 9460
# Spans reach the viewer within about a second (the SDK's default batch delay is 5 s).
TRACE_EXPORT_DELAY_MS = "1000"


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    up = subparsers.add_parser("up", help="start the whole suite (embedded servers if needed)")
    up.add_argument("--host", default="127.0.0.1", help="address services bind to")
    up.add_argument("--only", action="append", metavar="SERVICE", help="start only these services")
    up.add_argument(
        "--traces",
        action="store_true",
        help="run a local trace viewer: services export spans to it, a page shows them",
    )
    up.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    settings = Settings.from_env()  # not resolved against stack.json: we are the stack
    configure_logging(level=settings.log_level, fmt=settings.log_format, service="up")
    data_dir = Path(settings.data_dir).resolve()
    running = StackFile.read(data_dir)
    if running is not None:
        console.print(f"[red]leadflow is already running (pid {running.pid}) for {data_dir}")
        return 1
    stale = StackFile.load(data_dir)
    if stale is not None and stale.stop_leftovers():
        console.print("stopped processes left by an earlier run that was killed")
        time.sleep(1)
    services = discover_services()
    if args.only:
        unknown = set(args.only) - set(services)
        if unknown:
            console.print(f"[red]not installed: {', '.join(sorted(unknown))}")
            return 2
        services = {n: s for n, s in services.items() if n in args.only}

    stopping = _StopSignal()
    postgres = nats = None
    receiver: TraceReceiver | None = None
    viewer: TraceViewer | None = None
    trace_env: dict[str, str] = {}
    processes: dict[str, subprocess.Popen[bytes]] = {}
    try:
        if args.traces:
            store = SpanStore()
            receiver = TraceReceiver(
                store, host=args.host, port=_port_for(OTLP_PORT, args.host)
            ).start()
            viewer = TraceViewer(
                store,
                host=args.host,
                port=_port_for(TRACE_VIEWER_PORT, args.host),
                receiver_endpoint=receiver.endpoint,
            ).start()
            trace_env = {
                "OTEL_EXPORTER_OTLP_ENDPOINT": receiver.endpoint,
                "OTEL_BSP_SCHEDULE_DELAY": os.environ.get(
                    "OTEL_BSP_SCHEDULE_DELAY", TRACE_EXPORT_DELAY_MS
                ),
            }
        database_url, nats_url = settings.database_url, settings.nats_url
        if not database_url:
            console.print("starting PostgreSQL (embedded)...")
            postgres = EmbeddedPostgres(data_dir).start()
            database_url = postgres.url
        if not nats_url:
            console.print("starting nats-server with JetStream (embedded)...")
            nats = EmbeddedNats(data_dir).start(tied_to_parent=True)
            nats_url = nats.url
        stack_settings = settings.with_overrides(database_url=database_url, nats_url=nats_url)
        if nats is not None and "LEADFLOW_STREAM_MAX_BYTES" not in os.environ:
            # JetStream reserves each stream's cap on disk up front; a laptop's embedded
            # server cannot reserve the production default for every stream.
            stack_settings = stack_settings.with_overrides(
                stream_max_bytes=EMBEDDED_STREAM_MAX_BYTES
            )
        console.print("applying migrations and provisioning streams...")
        asyncio.run(provision_all(stack_settings, list(services.values())))

        addresses = {name: f"{args.host}:{_port_for(spec.default_port, args.host)}" for name,
                     spec in services.items()}  # fmt: skip
        metrics_ports = {
            name: _port_for(spec.default_metrics_port, args.host) for name, spec in services.items()
        }
        for name, spec in services.items():
            processes[name] = _spawn(
                spec, stack_settings, addresses[name], metrics_ports[name], data_dir, trace_env
            )
        children = [p.pid for p in processes.values()]
        if nats is not None and nats.process is not None:
            children.append(nats.process.pid)
        StackFile(os.getpid(), database_url, nats_url, addresses, children).write(data_dir)
        statuses = asyncio.run(_wait_healthy(addresses, processes, stopping))
        _print_table(
            database_url, nats_url, addresses, metrics_ports, statuses, postgres, nats, viewer
        )
        if any(status != "SERVING" for status in statuses.values()):
            console.print("[red]not every service became healthy; stopping")
            return 1
        console.print("[bold]leadflow is up.[/bold] Ctrl-C stops everything.")
        _wait_until_stopped(processes, stopping)
        return 0 if stopping.requested else 1
    finally:
        _stop_processes(processes, settings.shutdown_grace_seconds)
        if nats is not None:
            nats.stop()
        if postgres is not None:
            postgres.stop()
        if viewer is not None:
            viewer.stop()
        if receiver is not None:
            receiver.stop()
        with contextlib.suppress(OSError):
            StackFile.path(data_dir).unlink()
        console.print("stopped.")


class _StopSignal:
    def __init__(self) -> None:
        self.requested = False
        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, self._handle)

    def _handle(self, *_: object) -> None:
        self.requested = True


def _port_for(port: int, host: str) -> int:
    """A service's conventional port when it is free, else any free port."""
    import socket

    with socket.socket() as probe:
        try:
            probe.bind((host, port))
        except OSError:
            return free_port(host)
    return port


def _spawn(
    spec: ServiceSpec,
    settings: Settings,
    address: str,
    metrics_port: int,
    data_dir: Path,
    trace_env: dict[str, str],
) -> subprocess.Popen[bytes]:
    host, port = address.rsplit(":", 1)
    environ = dict(os.environ)
    if trace_env:
        # The viewer's receiver, not a traces-only endpoint named in this shell.
        environ.pop("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", None)
    env = {
        **environ,
        **trace_env,
        "LEADFLOW_DATABASE_URL": settings.database_url,
        "LEADFLOW_NATS_URL": settings.nats_url,
        "LEADFLOW_GRPC_HOST": host,
        "LEADFLOW_GRPC_PORT": port,
        "LEADFLOW_METRICS_PORT": str(metrics_port),
        "LEADFLOW_DATA_DIR": str(data_dir),
        "LEADFLOW_STREAM_MAX_BYTES": str(settings.stream_max_bytes),
    }
    return subprocess.Popen(
        [sys.executable, "-m", "leadflow_platform.cli", "serve", spec.name],
        env=env,
        start_new_session=True,
        preexec_fn=die_with_parent,
    )


async def _wait_healthy(
    addresses: dict[str, str],
    processes: dict[str, subprocess.Popen[bytes]],
    stopping: _StopSignal,
) -> dict[str, str]:
    statuses = dict.fromkeys(addresses, "STARTING")
    deadline = time.monotonic() + HEALTH_TIMEOUT_SECONDS
    while time.monotonic() < deadline and not stopping.requested:
        for name, address in addresses.items():
            if statuses[name] == "SERVING":
                continue
            if processes[name].poll() is not None:
                statuses[name] = f"EXITED ({processes[name].returncode})"
                continue
            statuses[name] = await health_status(address)
        if all(s == "SERVING" or s.startswith("EXITED") for s in statuses.values()):
            break
        await asyncio.sleep(0.2)
    return statuses


def _print_table(
    database_url: str,
    nats_url: str,
    addresses: dict[str, str],
    metrics_ports: dict[str, int],
    statuses: dict[str, str],
    postgres: EmbeddedPostgres | None,
    nats: EmbeddedNats | None,
    viewer: TraceViewer | None = None,
) -> None:
    table = Table("component", "listens on", "status", "metrics", title="leadflow")
    table.add_row(
        "postgresql", _redact(database_url), "embedded" if postgres else "external", style="dim"
    )
    table.add_row("nats (jetstream)", nats_url, "embedded" if nats else "external", style="dim")
    for name in SUITE:
        if name in addresses:
            status = statuses.get(name, "?")
            colour = "green" if status == "SERVING" else "red"
            host = addresses[name].rsplit(":", 1)[0]
            table.add_row(
                name,
                addresses[name],
                f"[{colour}]{status}[/{colour}]",
                f"http://{host}:{metrics_ports[name]}/metrics",
            )
        else:
            table.add_row(name, "", "[yellow]not built yet[/yellow]")
    for name in addresses:
        if name not in SUITE:
            table.add_row(name, addresses[name], statuses.get(name, "?"))
    if viewer is not None:
        table.add_row("trace viewer", viewer.url, "[green]serving[/green]")
        table.add_row("otlp receiver", viewer.receiver_endpoint, "spans exported here", style="dim")
    Console().print(table)


def _redact(url: str) -> str:
    if "@" in url and ":" in url.split("@", 1)[0].split("//", 1)[-1]:
        scheme, rest = url.split("//", 1)
        user = rest.split(":", 1)[0]
        return f"{scheme}//{user}:***@{rest.split('@', 1)[1]}"
    return url


def _wait_until_stopped(
    processes: dict[str, subprocess.Popen[bytes]], stopping: _StopSignal
) -> None:
    while not stopping.requested:
        for name, process in processes.items():
            if process.poll() is not None:
                console.print(f"[red]{name} exited with code {process.returncode}; stopping")
                return
        time.sleep(0.2)


def _stop_processes(processes: dict[str, subprocess.Popen[bytes]], grace: float) -> None:
    for process in processes.values():
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + grace + 5
    for name, process in processes.items():
        try:
            process.wait(max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            console.print(f"[yellow]{name} did not stop in time; killing it")
            process.kill()
            process.wait(5)
