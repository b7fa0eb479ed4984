"""Fixtures shared by every test kind.

Integration tests run against a real PostgreSQL and a real NATS JetStream: the ones
LEADFLOW_TEST_DATABASE_URL (an admin URL on which tests may create databases) and
LEADFLOW_TEST_NATS_URL name, or else embedded ones from the PyPI wheels, started once per
session on free ports in a temporary directory and stopped at the end. Nothing is skipped:
when a server cannot be started, the tests that need it fail.

Isolation: each test gets a database of its own and a bus namespace of its own (streams,
subjects and consumers prefixed), both removed afterwards.
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import hypothesis
import pytest
from opentelemetry import metrics as otel_metrics
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

SUPPORT = Path(__file__).parent / "support"
sys.path.insert(0, str(SUPPORT))

from leadflow_platform.embedded import EmbeddedNats, EmbeddedPostgres  # noqa: E402
from leadflow_platform.logging import configure_logging  # noqa: E402
from leadflow_platform.settings import Settings  # noqa: E402
from leadflow_platform.telemetry import configure_tracing  # noqa: E402

# Property tests check outcomes, not speed: on a busy 2-core machine one example can take
# longer than hypothesis's default 200 ms deadline.
hypothesis.settings.register_profile("leadflow", deadline=None)
hypothesis.settings.load_profile("leadflow")

# JetStream reserves every stream's cap on disk; tests create many streams at once, on
# machines whose disks may be small.
TEST_STREAM_MAX_BYTES = 64 * 1024**2
_SPANS = InMemorySpanExporter()
configure_logging(level="info", fmt="json")
configure_tracing("tests", processors=[SimpleSpanProcessor(_SPANS)])
# Services run in this process record their metrics here (cumulative over the session).
_METRICS = InMemoryMetricReader()
otel_metrics.set_meter_provider(MeterProvider(metric_readers=[_METRICS]))


@dataclass(frozen=True)
class Infra:
    admin_url: str
    nats_url: str
    embedded: bool


@pytest.fixture(scope="session")
def infra() -> Iterator[Infra]:
    database_url = os.environ.get("LEADFLOW_TEST_DATABASE_URL", "")
    nats_url = os.environ.get("LEADFLOW_TEST_NATS_URL", "")
    # Not under pytest's basetemp: when run as root, PostgreSQL runs as another user that
    # must traverse the directory, and every pytest start resets pytest-of-<user> to 0700.
    root = Path(tempfile.mkdtemp(prefix="leadflow-test-stack-"))
    postgres = nats = None
    try:
        if not database_url:
            postgres = EmbeddedPostgres(root, durable=False).start()
            database_url = postgres.admin_url
        if not nats_url:
            nats = EmbeddedNats(root).start()
            nats_url = nats.url
        yield Infra(database_url, nats_url, embedded=postgres is not None or nats is not None)
    finally:
        if nats is not None:
            nats.stop()
        if postgres is not None:
            postgres.stop()
        shutil.rmtree(root, ignore_errors=True)


def with_database(url: str, database: str) -> str:
    parts = urlsplit(url)
    return urlunsplit(parts._replace(path=f"/{database}"))


@pytest.fixture
async def database_url(infra: Infra) -> AsyncIterator[str]:
    """A fresh, empty database for this test only."""
    name = f"lf_test_{uuid.uuid4().hex[:12]}"
    admin = await asyncpg.connect(infra.admin_url)
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
    finally:
        await admin.close()
    yield with_database(infra.admin_url, name)
    admin = await asyncpg.connect(infra.admin_url)
    try:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await admin.close()


@pytest.fixture
async def bus_namespace(infra: Infra) -> AsyncIterator[str]:
    """A bus namespace for this test only; its streams are deleted afterwards."""
    import nats

    namespace = f"t{uuid.uuid4().hex[:10]}"
    yield namespace
    nc = await nats.connect(infra.nats_url)
    try:
        js = nc.jetstream()
        prefix = f"{namespace.upper()}_"
        for info in await js.streams_info():
            if info.config.name.startswith(prefix):
                await js.delete_stream(info.config.name)
    finally:
        await nc.close()


@pytest.fixture
def settings(infra: Infra, database_url: str, bus_namespace: str) -> Settings:
    """Settings of a service under test: this test's database and namespace, any free port,
    and retry delays short enough for tests."""
    return Settings.from_env({}).with_overrides(
        database_url=database_url,
        nats_url=infra.nats_url,
        bus_namespace=bus_namespace,
        grpc_host="127.0.0.1",
        grpc_port=0,
        consumer_backoff_seconds=(0.05, 0.1, 0.2, 0.4),
        shutdown_grace_seconds=5.0,
        outbox_poll_seconds=0.2,
        auth_cache_seconds=0.2,
        db_pool_min_size=1,
        stream_max_bytes=TEST_STREAM_MAX_BYTES,
    )


@pytest.fixture
def metric_reader() -> InMemoryMetricReader:
    """Metrics recorded in this process so far (cumulative: compare before and after)."""
    return _METRICS


@pytest.fixture
def spans() -> InMemorySpanExporter:
    """Spans finished during this test (the exporter is shared; it is cleared first)."""
    _SPANS.clear()
    return _SPANS
