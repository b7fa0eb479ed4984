"""Each service serves Prometheus metrics: RPCs by method and status, messages consumed by
outcome, dead letters, outbox publishing and backlog, consumer lag. Ingest and scoring run
in their own processes, as deployed, and are scraped over HTTP."""

from __future__ import annotations

import asyncio
import re
import signal
import subprocess
import sys
import urllib.request

import asyncpg
import grpc
import nats
import pytest
from harness import auth, eventually, new_key
from ingest_support import event
from processes import service_env

from leadflow.ingest.v1 import ingest_service_pb2 as pb
from leadflow.ingest.v1 import ingest_service_pb2_grpc
from leadflow_platform.embedded import free_port
from leadflow_platform.grpc.client import health_status, open_channel

pytestmark = pytest.mark.integration

TRACK_BATCH = "/leadflow.ingest.v1.IngestService/TrackBatch"
_SAMPLE = re.compile(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[^}]*\})?\s+(\S+)$")


def scrape(port: int) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    """Every sample of the endpoint, keyed by name and labels."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as reply:
        text = reply.read().decode()
    samples = {}
    for line in text.splitlines():
        match = _SAMPLE.match(line)
        if not match or line.startswith("#"):
            continue
        name, labels, value = match.groups()
        pairs = frozenset(re.findall(r'(\w+)="([^"]*)"', labels or ""))
        samples[(name, pairs)] = float(value)
    return samples


def value(samples, name: str, **labels: str) -> float:
    """The sum of the samples of `name` whose labels include `labels` (0 when none)."""
    wanted = set(labels.items())
    return sum(v for (n, pairs), v in samples.items() if n == name and wanted <= pairs)


def has(samples, name: str, **labels: str) -> bool:
    wanted = set(labels.items())
    return any(n == name and wanted <= pairs for n, pairs in samples)


async def scraped(port: int):
    return await asyncio.to_thread(scrape, port)


def start(module: str, settings, grpc_port: int, metrics_port: int) -> subprocess.Popen[bytes]:
    env = service_env(
        settings,
        LEADFLOW_GRPC_PORT=str(grpc_port),
        LEADFLOW_METRICS_PORT=str(metrics_port),
        LEADFLOW_METRICS_SAMPLE_SECONDS="0.2",
    )
    return subprocess.Popen(
        [sys.executable, "-m", module],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


async def test_services_serve_rpc_consumer_outbox_and_dead_letter_metrics(settings):
    key = await new_key(settings.database_url, "371minds", "admin")
    ingest_port, ingest_metrics = free_port(), free_port()
    scoring_port, scoring_metrics = free_port(), free_port()
    processes = [
        start("leadflow_ingest", settings, ingest_port, ingest_metrics),
        start("leadflow_scoring", settings, scoring_port, scoring_metrics),
    ]
    try:
        for port in (ingest_port, scoring_port):

            async def serving(port: int = port) -> bool:
                return await health_status(f"127.0.0.1:{port}") == "SERVING"

            await eventually(serving, timeout=60)
        async with open_channel(f"127.0.0.1:{ingest_port}") as channel:
            stub = ingest_service_pb2_grpc.IngestServiceStub(channel)
            for n in range(3):
                batch = pb.TrackBatchRequest(events=[event(f"m-{n}", lead_id=f"lead-{n}")])
                await stub.TrackBatch(batch, metadata=auth(key))
            with pytest.raises(grpc.aio.AioRpcError) as refused:
                await stub.TrackBatch(pb.TrackBatchRequest(events=[]), metadata=auth(key))
            assert refused.value.code() is grpc.StatusCode.INVALID_ARGUMENT
            with pytest.raises(grpc.aio.AioRpcError) as anonymous:
                await stub.TrackBatch(pb.TrackBatchRequest(events=[event("m-x")]))
            assert anonymous.value.code() is grpc.StatusCode.UNAUTHENTICATED

        samples = await scraped(ingest_metrics)
        total = "leadflow_rpc_server_requests_total"
        assert value(samples, total, rpc_method=TRACK_BATCH, rpc_grpc_status_code="OK") == 3
        assert (
            value(samples, total, rpc_method=TRACK_BATCH, rpc_grpc_status_code="INVALID_ARGUMENT")
            == 1
        )
        assert (
            value(samples, total, rpc_method=TRACK_BATCH, rpc_grpc_status_code="UNAUTHENTICATED")
            == 1
        )
        duration = "leadflow_rpc_server_duration_seconds_count"
        assert value(samples, duration, rpc_method=TRACK_BATCH) == 5
        assert value(samples, "leadflow_rpc_server_duration_seconds_bucket", le="+Inf") >= 5

        # Scoring applies the three messages; ingest's relay published them; both gauges
        # settle at zero once everything is through.
        async def through() -> bool:
            ingest, scoring = await scraped(ingest_metrics), await scraped(scoring_metrics)
            applied = value(
                scoring,
                "leadflow_consumer_messages_total",
                consumer="scoring-ingest-events",
                subject="ingest.event.recorded",
                outcome="applied",
            )
            published = await conn.fetchval(
                "SELECT count(*) FROM ingest.outbox WHERE published_at IS NOT NULL"
            )
            return (
                applied == 3
                and published >= 3
                and value(ingest, "leadflow_outbox_published_total") == published
                and has(ingest, "leadflow_outbox_backlog")
                and value(ingest, "leadflow_outbox_backlog") == 0
                and has(scoring, "leadflow_consumer_pending", consumer="scoring-ingest-events")
                and value(scoring, "leadflow_consumer_pending", consumer="scoring-ingest-events")
                == 0
            )

        conn = await asyncpg.connect(settings.database_url)
        try:
            await eventually(through, timeout=30, interval=0.2)
        finally:
            await conn.close()

        # A message scoring cannot decode is dead-lettered, and counted so.
        nc = await nats.connect(settings.nats_url)
        try:
            await nc.jetstream().publish(
                f"{settings.bus_namespace}.ingest.event.recorded",
                b"\xff\xff not a protobuf",
                headers={"Nats-Msg-Id": "poison-1", "Leadflow-Tenant": "371minds"},
            )
        finally:
            await nc.close()

        async def dead_lettered() -> bool:
            scoring = await scraped(scoring_metrics)
            return (
                value(
                    scoring,
                    "leadflow_consumer_dead_lettered_total",
                    consumer="scoring-ingest-events",
                    subject="ingest.event.recorded",
                )
                == 1
                and value(scoring, "leadflow_dead_letters_stored") == 1
            )

        await eventually(dead_lettered, timeout=30, interval=0.2)
    finally:
        for process in processes:
            process.send_signal(signal.SIGTERM)
        for process in processes:
            process.wait(30)
