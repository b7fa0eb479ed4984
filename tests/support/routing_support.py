"""Running routing (with ingest and scoring) on a controllable clock, a webhook receiver that
checks signatures, a fake Mautic REST API, and reading what routing published, for tests and
benchmarks."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import re
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
MAUTIC_CREDENTIALS = "leadflow-api:mautic-test-password"
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
            async for _method, _path, headers, body in _http_requests(reader):
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
        except (ConnectionError, asyncio.IncompleteReadError, asyncio.CancelledError):
            return  # a client gone, or the server closing under a "hang"
        finally:
            writer.close()

    @contextlib.asynccontextmanager
    async def serving(self) -> AsyncIterator[WebhookReceiver]:
        async with _listening(self._serve) as self.port:
            yield self


async def _http_requests(
    reader: asyncio.StreamReader,
) -> AsyncIterator[tuple[str, str, dict[str, str], bytes]]:
    """(method, path, lower-cased headers, body) of each request on a keep-alive connection."""
    while True:
        line = await reader.readline()
        if not line:
            return
        method, path, _ = line.decode().split(" ", 2)
        headers: dict[str, str] = {}
        while (raw := await reader.readline()) not in (b"\r\n", b"\n", b""):
            name, _, value = raw.decode().partition(":")
            headers[name.strip().lower()] = value.strip()
        body = await reader.readexactly(int(headers.get("content-length", "0")))
        yield method, path, headers, body


@contextlib.asynccontextmanager
async def _listening(handler: Any) -> AsyncIterator[int]:
    """A local HTTP server on a free port (yielded) for as long as the block runs."""
    server = await asyncio.start_server(handler, "127.0.0.1", 0)
    try:
        yield server.sockets[0].getsockname()[1]
    finally:
        server.close()


_SEGMENT_ADD = re.compile(r"^/api/(segments|campaigns)/(\w+)/contact/(\d+)/add$")


@dataclass
class MauticServer:
    """A Mautic instance as its REST API behaves (an outside party): Basic auth;
    `POST /api/contacts/new` creates the contact or, when one with that email exists,
    updates it (Mautic's create-or-edit by unique field); `POST /api/segments/<id>/contact/
    <contact>/add` and `.../campaigns/...` add a member once (adding again is a no-op).
    Each request takes the next queued behaviour ("fail": 500, "hang": no answer), then
    answers normally."""

    credentials: str = MAUTIC_CREDENTIALS
    behaviours: list[str] = field(default_factory=list)
    requests: list[tuple[str, str, dict[str, str], Any]] = field(default_factory=list)
    contacts: dict[int, dict[str, Any]] = field(default_factory=dict)
    segments: dict[str, list[int]] = field(default_factory=dict)
    campaigns: dict[str, list[int]] = field(default_factory=dict)
    port: int = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/mautic"

    def _answer(
        self, method: str, path: str, headers: dict[str, str], body: Any
    ) -> tuple[int, Any]:
        expected = "Basic " + base64.b64encode(self.credentials.encode()).decode()
        if headers.get("authorization") != expected:
            return 401, {"errors": [{"code": 401, "message": "authorization required"}]}
        path = path.removeprefix("/mautic")
        if method == "POST" and path == "/api/contacts/new":
            email = (body or {}).get("email", "")
            found = next((i for i, c in self.contacts.items() if email and c["email"] == email), 0)
            if found:
                self.contacts[found].update(body)
                return 200, {"contact": {"id": found, "fields": self.contacts[found]}}
            new_id = len(self.contacts) + 1
            self.contacts[new_id] = dict(body)
            return 201, {"contact": {"id": new_id, "fields": self.contacts[new_id]}}
        m = _SEGMENT_ADD.match(path)
        if method == "POST" and m:
            kind, list_id, contact_id = m.group(1), m.group(2), int(m.group(3))
            if contact_id not in self.contacts:
                return 404, {"errors": [{"code": 404, "message": "contact not found"}]}
            members = (self.segments if kind == "segments" else self.campaigns).setdefault(
                list_id, []
            )
            if contact_id not in members:
                members.append(contact_id)
            return 200, {"success": 1}
        return 404, {"errors": [{"code": 404, "message": "not found"}]}

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            async for method, path, headers, raw in _http_requests(reader):
                body = json.loads(raw) if raw else None
                self.requests.append((method, path, headers, body))
                behaviour = self.behaviours.pop(0) if self.behaviours else "ok"
                if behaviour == "hang":
                    await asyncio.sleep(30)
                    return
                if behaviour == "fail":
                    status, answer = 500, {"errors": [{"code": 500, "message": "down"}]}
                else:
                    status, answer = self._answer(method, path, headers, body)
                data = json.dumps(answer).encode()
                writer.write(
                    f"HTTP/1.1 {status} X\r\nContent-Type: application/json\r\n"
                    f"Content-Length: {len(data)}\r\n\r\n".encode()
                    + data
                )
                await writer.drain()
        except (ConnectionError, asyncio.IncompleteReadError, asyncio.CancelledError):
            return  # a client gone, or the server closing under a "hang"
        finally:
            writer.close()

    @contextlib.asynccontextmanager
    async def serving(self) -> AsyncIterator[MauticServer]:
        async with _listening(self._serve) as self.port:
            yield self


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
    secrets.write_text(
        json.dumps({"modumind-webhook": SECRET, "stacksense-mautic": MAUTIC_CREDENTIALS})
    )
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
