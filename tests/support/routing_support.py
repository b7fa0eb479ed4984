"""Running routing (with ingest and scoring) on a controllable clock, a webhook receiver that
checks signatures, and reading what routing published, for tests and benchmarks."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import nats
from harness import running
from scoring_support import Suite
from scoring_support import suite as scoring_suite

from leadflow.routing.v1 import events_pb2 as routing_events
from leadflow.routing.v1 import routing_service_pb2 as pb
from leadflow.routing.v1 import routing_service_pb2_grpc
from leadflow_platform.grpc.client import open_channel
from leadflow_platform.lifecycle import Runtime
from leadflow_platform.nats import headers as h
from leadflow_platform.nats.streams import BusNames
from leadflow_platform.settings import Settings
from leadflow_routing.api.mapping import config_to_proto
from leadflow_routing.app import spec
from leadflow_routing.domain.config import RoutingConfig, Sink
from leadflow_routing.domain.document import load_yaml
from leadflow_routing.domain.signing import IDEMPOTENCY_HEADER, SIGNATURE_HEADER, verify

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "portfolio-371minds.yaml"
SECRET = "whsec-test-secret"
SUBJECT_TYPES: dict[str, Any] = {
    "routing.lead.routed": routing_events.LeadRouted,
    "routing.assignment.breached": routing_events.AssignmentBreached,
    "routing.nurture.step_due": routing_events.NurtureStepDue,
}


class Clock:
    """Time the routing service sees: real time plus what the test moved it forward by."""

    def __init__(self) -> None:
        self.offset = timedelta(0)

    @property
    def now(self) -> datetime:
        return datetime.now(UTC) + self.offset

    def __call__(self) -> datetime:
        return self.now

    def advance(self, delta: timedelta) -> None:
        self.offset += delta


@dataclass
class Received:
    headers: dict[str, str]
    body: bytes

    @property
    def json(self) -> Any:
        return json.loads(self.body)


@dataclass
class WebhookReceiver:
    """A webhook endpoint of an outside CRM: records every request, answers with the queued
    behaviours ("fail": 500, "hang": no answer before the client times out) and then 200,
    and accepts an Idempotency-Key once (a repeat after a lost answer is acknowledged
    without counting twice, as a careful receiver would)."""

    secret: str = SECRET
    behaviours: list[str] = field(default_factory=list)
    requests: list[Received] = field(default_factory=list)
    accepted: dict[str, Received] = field(default_factory=dict)
    port: int = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hooks/leadflow"

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                line = await reader.readline()
                if not line:
                    return
                headers: dict[str, str] = {}
                while (raw := await reader.readline()) not in (b"\r\n", b"\n", b""):
                    name, _, value = raw.decode().partition(":")
                    headers[name.strip().lower()] = value.strip()
                body = await reader.readexactly(int(headers.get("content-length", "0")))
                received = Received(headers, body)
                self.requests.append(received)
                behaviour = self.behaviours.pop(0) if self.behaviours else "ok"
                if behaviour == "hang":
                    await asyncio.sleep(30)
                    return
                if behaviour == "fail":
                    status = "500 Internal Server Error"
                elif not verify(
                    self.secret.encode(), body, headers.get(SIGNATURE_HEADER.lower(), "")
                ):
                    status = "401 Unauthorized"
                else:
                    status = "200 OK"
                    key = headers.get(IDEMPOTENCY_HEADER.lower(), "")
                    self.accepted.setdefault(key, received)
                writer.write(f"HTTP/1.1 {status}\r\nContent-Length: 0\r\n\r\n".encode())
                await writer.drain()
        except (ConnectionError, asyncio.IncompleteReadError):
            return
        finally:
            writer.close()

    @contextlib.asynccontextmanager
    async def serving(self) -> AsyncIterator[WebhookReceiver]:
        server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.port = server.sockets[0].getsockname()[1]
        try:
            yield self
        finally:
            server.close()


def example_config(webhook_url: str = "", *, timeout: timedelta | None = None) -> RoutingConfig:
    """The shipped 371minds configuration, ModuMind's webhook pointed at `webhook_url`."""
    config = load_yaml(EXAMPLE.read_text())
    if not webhook_url:
        return config
    brands = []
    for brand in config.brands:
        if brand.id == "modumind":
            assert brand.sink.webhook is not None
            hook = replace(brand.sink.webhook, url=webhook_url, timeout=timeout or timedelta(0))
            brand = replace(brand, sink=Sink(webhook=hook, retry=brand.sink.retry))
        brands.append(brand)
    return replace(config, brands=tuple(brands))


def routing_env(monkeypatch: Any, tmp_path: Path, **overrides: str) -> None:
    """Routing's settings for fast tests: jobs every 0.1 s and a secrets file."""
    secrets = tmp_path / "routing-secrets.json"
    secrets.write_text(json.dumps({"modumind-webhook": SECRET}))
    values = {
        "LEADFLOW_ROUTING_SLA_INTERVAL_SECONDS": "0.1",
        "LEADFLOW_ROUTING_NURTURE_INTERVAL_SECONDS": "0.1",
        "LEADFLOW_ROUTING_DELIVERY_POLL_SECONDS": "0.05",
        "LEADFLOW_ROUTING_SECRETS_FILE": str(secrets),
        **overrides,
    }
    for name, value in values.items():
        monkeypatch.setenv(name, value)


@dataclass
class RoutingSuite:
    base: Suite
    runtimes: list[Runtime]
    routing: routing_service_pb2_grpc.RoutingServiceStub
    clock: Clock

    @property
    def metadata(self) -> tuple[tuple[str, str], ...]:
        return self.base.metadata

    @property
    def pool(self) -> Any:
        """A pool on the routing schema."""
        return self.runtimes[0].pool

    async def put_config(self, config: RoutingConfig) -> pb.PutRoutingConfigResponse:
        return await self.routing.PutRoutingConfig(
            pb.PutRoutingConfigRequest(config=config_to_proto(config)), metadata=self.metadata
        )


@contextlib.asynccontextmanager
async def routing_suite(
    settings: Settings, *, replicas: int = 1, clock: Clock | None = None
) -> AsyncIterator[RoutingSuite]:
    clock = clock or Clock()
    async with contextlib.AsyncExitStack() as stack:
        base = await stack.enter_async_context(scoring_suite(settings))
        runtimes = [
            await stack.enter_async_context(running(spec(clock), settings)) for _ in range(replicas)
        ]
        channel = await stack.enter_async_context(open_channel(f"127.0.0.1:{runtimes[0].port}"))
        yield RoutingSuite(
            base, runtimes, routing_service_pb2_grpc.RoutingServiceStub(channel), clock
        )


async def published(settings: Settings, subject: str) -> list[tuple[str, Any]]:
    """Every message on a routing subject in the ROUTING stream, in stream order."""
    names = BusNames(settings.bus_namespace)
    nc = await nats.connect(settings.nats_url)
    try:
        js = nc.jetstream()
        stream = names.stream("ROUTING")
        try:
            info = await js.stream_info(stream)
        except nats.js.errors.NotFoundError:
            return []
        out: list[tuple[str, Any]] = []
        if info.state.messages == 0:
            return out
        for seq in range(max(info.state.first_seq, 1), info.state.last_seq + 1):
            try:
                msg = await js.get_msg(stream, seq)
            except nats.js.errors.NotFoundError:
                continue
            if names.logical_subject(msg.subject or "") != subject:
                continue
            decoded = SUBJECT_TYPES[subject].FromString(msg.data or b"")
            out.append(((msg.headers or {}).get(h.MSG_ID, ""), decoded))
        return out
    finally:
        await nc.close()
