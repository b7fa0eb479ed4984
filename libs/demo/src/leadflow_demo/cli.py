"""`leadflow demo`: generate the 371Minds portfolio, push it through ingest over gRPC, wait until
every service has caught up, print what the suite made of it and write the weekly report.

It uses the suite `make up` started (found through `.leadflow/stack.json`), or starts one
itself and stops it at the end (`--keep-running` leaves it up).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import subprocess
import sys
import time
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import asyncpg
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from leadflow.ingest.v1 import ingest_service_pb2 as ipb
from leadflow.ingest.v1 import ingest_service_pb2_grpc
from leadflow.reporting.v1 import reporting_service_pb2_grpc
from leadflow.routing.v1 import routing_service_pb2 as rpb
from leadflow.routing.v1 import routing_service_pb2_grpc
from leadflow_demo import dataset, summary
from leadflow_demo.catch_up import Backlog, wait_until_caught_up
from leadflow_platform.cli.common import settings as cli_settings
from leadflow_platform.cli.stack import StackFile
from leadflow_platform.grpc.client import api_key_metadata, health_status, open_channel
from leadflow_platform.service import SUITE
from leadflow_platform.tenancy.keys import Scope
from leadflow_platform.tenancy.store import create_key
from leadflow_routing.api.mapping import config_to_proto
from leadflow_routing.domain.config import LOG_SINK, RoutingConfig
from leadflow_routing.domain.document import load_yaml

EXAMPLE = "examples/portfolio-371minds.yaml"
BATCH = 500
IN_FLIGHT = 4


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    demo = subparsers.add_parser(
        "demo", help="push a generated portfolio through the suite and summarise it"
    )
    demo.add_argument("--seed", type=int, default=371, help="same seed, same data (default 371)")
    demo.add_argument("--leads", type=int, default=2000, help="visitors to generate (default 2000)")
    demo.add_argument("--tenant", default=dataset.TENANT, help="tenant to load (default 371minds)")
    demo.add_argument("--routing-config", default=None, help=f"routing YAML (default {EXAMPLE})")
    demo.add_argument(
        "--keep-sinks",
        action="store_true",
        help="keep the example's webhook and Mautic sinks (their hosts do not exist: by default"
        " the demo delivers to log sinks)",
    )
    demo.add_argument("--out", default=None, help="weekly report HTML (default <data dir>/...)")
    demo.add_argument("--timeout", type=float, default=600, help="seconds to wait for catch-up")
    demo.add_argument(
        "--keep-running", action="store_true", help="leave a suite the demo started running"
    )
    demo.set_defaults(run=_run)


def _run(args: argparse.Namespace) -> int:
    if args.leads < 10:
        print("leadflow demo: --leads must be at least 10", file=sys.stderr)
        return 2
    console = Console()
    settings = cli_settings()
    data_dir = Path(settings.data_dir)
    stack = StackFile.read(data_dir)
    started: subprocess.Popen[bytes] | None = None
    try:
        if stack is None:
            console.print("no running suite found: starting one (`leadflow up`)...")
            started, stack = _start_suite(data_dir)
        missing = [name for name in SUITE if name not in stack.services]
        if missing:
            console.print(f"[red]the running suite lacks {', '.join(missing)}")
            return 1
        return asyncio.run(_demo(args, console, stack, data_dir))
    finally:
        if started is not None and not args.keep_running:
            console.print("stopping the suite the demo started...")
            started.send_signal(signal.SIGINT)
            started.wait(120)


def _start_suite(data_dir: Path) -> tuple[subprocess.Popen[bytes], StackFile]:
    data_dir.mkdir(parents=True, exist_ok=True)
    log = (data_dir / "demo-suite.log").open("wb")
    process = subprocess.Popen(
        [sys.executable, "-m", "leadflow_platform.cli", "up"],
        stdout=log,
        stderr=subprocess.STDOUT,
        env={**os.environ, "LEADFLOW_DATA_DIR": str(data_dir)},
    )
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"leadflow up exited; see {data_dir / 'demo-suite.log'}")
        stack = StackFile.read(data_dir)
        if stack is not None and stack.pid == process.pid and _all_serving(stack):
            return process, stack
        time.sleep(0.5)
    process.send_signal(signal.SIGINT)
    raise SystemExit("the suite did not become healthy within 3 minutes")


def _all_serving(stack: StackFile) -> bool:
    async def check() -> bool:
        statuses = [await health_status(a) for a in stack.services.values()]
        return bool(statuses) and all(s == "SERVING" for s in statuses)

    return asyncio.run(check())


async def _demo(
    args: argparse.Namespace, console: Console, stack: StackFile, data_dir: Path
) -> int:
    now = datetime.now(UTC).replace(microsecond=0)
    data = dataset.generate(args.seed, args.leads, now)
    console.print(
        f"generated {len(data.identifies):,} leads and {len(data.events):,} events for"
        f" {len(dataset.BRANDS)} brands (seed {args.seed})"
    )
    conn = await asyncpg.connect(stack.database_url)
    try:
        key = (await create_key(conn, args.tenant, frozenset({Scope.ADMIN}), "demo")).token
    finally:
        await conn.close()
    metadata = api_key_metadata(key)
    address = stack.services
    async with open_channel(address["routing"]) as channel:
        routing = routing_service_pb2_grpc.RoutingServiceStub(channel)
        config = _routing_config(args)
        reply = await routing.PutRoutingConfig(
            rpb.PutRoutingConfigRequest(config=config_to_proto(config)), metadata=metadata
        )
        console.print(f"routing configuration version {reply.version} is active")
    async with open_channel(address["ingest"]) as channel:
        await _send(console, ingest_service_pb2_grpc.IngestServiceStub(channel), metadata, data)

    with console.status("waiting for scoring, attribution, routing and reporting") as status:

        def progress(b: Backlog) -> None:
            status.update(f"catching up: {b.pending:,} messages pending, {b.outbox:,} unpublished")

        last = await wait_until_caught_up(
            stack.database_url, stack.nats_url, timeout=args.timeout, on_progress=progress
        )
    if not last.empty:
        console.print(f"[yellow]still catching up after {args.timeout:.0f}s: {last}")
    async with open_channel(address["reporting"]) as channel:
        stub = reporting_service_pb2_grpc.ReportingServiceStub(channel)
        answers = await summary.ask(
            stub,
            metadata,
            now - timedelta(days=dataset.HISTORY_DAYS + 1),
            datetime.now(UTC),
        )
    console.print(summary.grade_table(answers.quality))
    console.print(summary.attribution_table(answers.attribution))
    console.print(summary.routing_table(answers.portfolio))
    console.print(summary.insights_table(answers.insights))
    out = Path(args.out) if args.out else data_dir / f"weekly-report-{args.tenant}.html"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(answers.weekly.html)
    out.with_suffix(".txt").write_text(answers.weekly.text)
    console.print(f"weekly report: [bold]{out.resolve()}[/bold] (plain text beside it)")
    return 0


def _routing_config(args: argparse.Namespace) -> RoutingConfig:
    path = Path(args.routing_config) if args.routing_config else _example()
    config = load_yaml(path.read_text())
    if args.keep_sinks:
        return config
    brands = tuple(replace(b, sink=LOG_SINK) for b in config.brands)
    return replace(config, brands=brands)


def _example() -> Path:
    for base in (Path.cwd(), Path(__file__).resolve().parents[4]):
        if (base / EXAMPLE).is_file():
            return base / EXAMPLE
    raise SystemExit(f"leadflow demo: {EXAMPLE} not found; pass --routing-config")


async def _send(
    console: Console,
    stub: ingest_service_pb2_grpc.IngestServiceStub,
    metadata: tuple[tuple[str, str], ...],
    data: dataset.Dataset,
) -> None:
    columns = (
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeRemainingColumn(),
    )
    with Progress(*columns, console=console) as bar:
        people = bar.add_task("profiles and consent", total=len(data.identifies))
        queue = list(zip(data.identifies, data.consents, strict=True))

        async def person_sender() -> None:
            while queue:
                identify, consent = queue.pop()
                await stub.Identify(identify, metadata=metadata, timeout=30)
                await stub.SetConsent(consent, metadata=metadata, timeout=30)
                bar.advance(people)

        await asyncio.gather(*(person_sender() for _ in range(IN_FLIGHT)))
        events = bar.add_task("events", total=len(data.events))
        batches = [data.events[i : i + BATCH] for i in range(0, len(data.events), BATCH)]
        batches.reverse()

        async def event_sender() -> None:
            while batches:
                batch = batches.pop()
                reply = await stub.TrackBatch(
                    ipb.TrackBatchRequest(events=batch), metadata=metadata, timeout=60
                )
                if reply.rejected:
                    bad = next(r for r in reply.results if r.violations)
                    raise SystemExit(f"ingest rejected a demo event: {bad}")
                bar.advance(events, len(batch))

        await asyncio.gather(*(event_sender() for _ in range(IN_FLIGHT)))
