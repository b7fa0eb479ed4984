"""Run a service: start in order, serve, and shut down in order, once.

Startup: gRPC port bound with health NOT_SERVING -> database pool -> migrations (under an
advisory lock, so replicas do not race) -> NATS, the service's stream and its consumers ->
background tasks (consumers, outbox relay, jobs) -> health SERVING. (A worker that shares
its port with siblings, LEADFLOW_WORKERS > 1, binds the port only once connected.)

Shutdown, on SIGTERM/SIGINT or when a background task fails: health NOT_SERVING -> consumers
stop pulling and finish the message in hand -> the gRPC server stops accepting and lets
in-flight calls finish (grace period) -> the outbox relay publishes what is committed ->
other tasks stop -> NATS drained -> pool closed. The first task error is raised from `run`
after the shutdown, so the process exits non-zero instead of hanging.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import signal
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from typing import Any, Protocol

import asyncpg
import grpc

from leadflow_platform.db.migrations_runner import migrate
from leadflow_platform.db.pool import create_pool
from leadflow_platform.grpc.server import GrpcServer
from leadflow_platform.logging import get_logger
from leadflow_platform.metrics_sampler import sample as sample_metrics
from leadflow_platform.nats.bus import Bus
from leadflow_platform.nats.consumer import Consumer, ConsumerSpec, Handler
from leadflow_platform.nats.outbox import OutboxRelay
from leadflow_platform.nats.reconcile import reconcile_outbox
from leadflow_platform.nats.streams import stream_for
from leadflow_platform.provision import stream_limits
from leadflow_platform.service import ServiceSpec, tenancy_migrations
from leadflow_platform.settings import Settings
from leadflow_platform.tenancy.keys import Principal
from leadflow_platform.tenancy.store import SCHEMA as TENANCY_SCHEMA
from leadflow_platform.tenancy.store import KeyStore, TenantDirectory
from leadflow_platform.tls import server_tls

log = get_logger(__name__)

Task = Callable[[asyncio.Event], Coroutine[Any, Any, None]]


@dataclass
class _Background:
    name: str
    run: Task


class ServiceContext(Protocol):
    """What a service's use cases need from the running process. `Runtime` provides it once
    connected; tests may pass anything with these attributes."""

    @property
    def pool(self) -> asyncpg.Pool: ...

    @property
    def tenants(self) -> TenantDirectory: ...


class Runtime:
    def __init__(self, spec: ServiceSpec, settings: Settings) -> None:
        settings.require_infrastructure()
        self.spec = spec
        self.settings = settings
        self._pool: asyncpg.Pool | None = None
        self._bus: Bus | None = None
        self._key_store: KeyStore | None = None
        self._tenants: TenantDirectory | None = None
        self._ready = False
        self._stop = asyncio.Event()
        self._consumers: list[Consumer] = []
        self._consumer_specs: list[tuple[ConsumerSpec, Handler]] = []
        self._tasks: list[_Background] = []
        self._relay_enabled = False
        self.relay: OutboxRelay | None = None
        self._servicers: list[tuple[Callable[[Any, grpc.aio.Server], None], Any, str]] = []
        self._server: GrpcServer | None = None

    # Wiring (from the service's build function) -------------------------------------------

    @property
    def pool(self) -> asyncpg.Pool:
        if self._pool is None:
            raise RuntimeError("the database pool is not open yet")
        return self._pool

    @property
    def tenants(self) -> TenantDirectory:
        if self._tenants is None:
            raise RuntimeError("the tenant directory needs the database pool")
        return self._tenants

    @property
    def bus(self) -> Bus:
        if self._bus is None:
            raise RuntimeError("the bus is not connected yet")
        return self._bus

    @property
    def consumers(self) -> list[Consumer]:
        return list(self._consumers)

    @property
    def server(self) -> GrpcServer:
        if self._server is None:
            raise RuntimeError("the gRPC server is created when the service runs")
        return self._server

    @property
    def port(self) -> int:
        """The bound gRPC port; 0 until the server has started."""
        return self._server.port if self._server is not None else 0

    def add_servicer(
        self, register: Callable[[Any, grpc.aio.Server], None], servicer: Any, service_name: str
    ) -> None:
        """`register` is the generated `add_<Service>Servicer_to_server` function."""
        self._servicers.append((register, servicer, service_name))

    def add_consumer(self, spec: ConsumerSpec, handler: Handler) -> None:
        self._consumer_specs.append((spec, handler))

    def consumer_spec(
        self, durable: str, stream: str, filter_subjects: tuple[str, ...], **overrides: Any
    ) -> ConsumerSpec:
        """A ConsumerSpec with the retry and batching settings of this deployment."""
        values: dict[str, Any] = {
            "max_deliver": self.settings.consumer_max_deliver,
            "backoff_seconds": self.settings.consumer_backoff_seconds,
            "batch_size": self.settings.consumer_batch_size,
        }
        values.update(overrides)
        return ConsumerSpec(
            durable=durable, stream=stream, filter_subjects=filter_subjects, **values
        )

    def add_task(self, name: str, run: Task) -> None:
        """A background loop: it runs until the event it is given is set."""
        self._tasks.append(_Background(name, run))

    def add_periodic(
        self, name: str, interval_seconds: float, job: Callable[[], Coroutine[Any, Any, object]]
    ) -> None:
        """Run `job` every `interval_seconds` (first run after one interval); a failing run
        is logged and retried at the next tick rather than stopping the service."""

        async def loop(stop: asyncio.Event) -> None:
            while not stop.is_set():
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), interval_seconds)
                if stop.is_set():
                    return
                try:
                    await job()
                except Exception:
                    log.exception("periodic_job_failed", job=name)

        self.add_task(name, loop)

    def enable_outbox_relay(self) -> None:
        self._relay_enabled = True

    def request_stop(self) -> None:
        self._stop.set()

    @property
    def ready(self) -> bool:
        return self._ready

    # Running ------------------------------------------------------------------------------

    async def run(self, *, install_signal_handlers: bool = True) -> None:
        loop = asyncio.get_running_loop()
        if install_signal_handlers:
            for sig in (signal.SIGTERM, signal.SIGINT):
                loop.add_signal_handler(sig, self.request_stop)
        consumer_stop = asyncio.Event()
        task_stop = asyncio.Event()
        running: dict[asyncio.Task[None], str] = {}
        consumer_tasks: list[asyncio.Task[None]] = []
        failure: BaseException | None = None
        try:
            built = self.spec.build(self)
            if inspect.isawaitable(built):
                await built
            # grpc.aio binds a server to the running loop, so it is made here, not earlier.
            self._server = GrpcServer(
                host=self.settings.grpc_host,
                port=self._port(),
                authenticate=self._authenticate,
                is_ready=lambda: self._ready,
                max_message_bytes=self.settings.max_message_bytes,
                reuse_port=self.settings.workers > 1,
                tls=server_tls(self.settings),
            )
            for register, servicer, name in self._servicers:
                self._server.add_servicer(register, servicer, name)
            # A worker sharing the port would take connections it cannot serve yet from its
            # ready siblings: it binds only once it can work. A lone server binds first, so
            # that health checks can see it start.
            shares_port = self.settings.workers > 1
            if not shares_port:
                await self._server.start()
            await self._connect()
            for consumer_spec, handler in self._consumer_specs:
                # A consumer may start before its producer ever ran: its stream must exist.
                await self.bus.ensure_stream(stream_for(consumer_spec.stream.lower()))
                consumer = Consumer(consumer_spec, handler, pool=self.pool, bus=self.bus)
                await consumer.provision()
                self._consumers.append(consumer)
            for consumer in self._consumers:
                task = asyncio.create_task(consumer.run(consumer_stop))
                running[task] = consumer.spec.durable
                consumer_tasks.append(task)
            if self._relay_enabled:
                self.relay = OutboxRelay(
                    self.pool,
                    self.bus,
                    schema=self.spec.schema,
                    batch_size=self.settings.outbox_batch_size,
                    poll_seconds=self.settings.outbox_poll_seconds,
                )
                running[asyncio.create_task(self.relay.run(task_stop))] = "outbox-relay"
                if self.spec.stream is not None:
                    stream = self.spec.stream
                    self.add_periodic(
                        "outbox-reconcile",
                        self.settings.outbox_reconcile_seconds,
                        lambda: reconcile_outbox(self.pool, self.bus, stream),
                    )
            if self.settings.metrics:
                self.add_periodic(
                    "metrics-sampler",
                    self.settings.metrics_sample_seconds,
                    lambda: sample_metrics(self.pool, self.bus, self._consumers),
                )
            for background in self._tasks:
                running[asyncio.create_task(background.run(task_stop))] = background.name
            if shares_port:
                await self._server.start()
            self._ready = True
            await self.server.set_serving()
            log.info("service_ready", service=self.spec.name, port=self.server.port)
            failure = await self._wait(running)
        finally:
            await self._shutdown(running, consumer_tasks, consumer_stop, task_stop)
            if install_signal_handlers:
                for sig in (signal.SIGTERM, signal.SIGINT):
                    loop.remove_signal_handler(sig)
        if failure is not None:
            raise failure

    def _port(self) -> int:
        configured = self.settings.grpc_port
        return self.spec.default_port if configured is None else configured

    async def _connect(self) -> None:
        s = self.settings
        self._pool = await create_pool(
            s.database_url,
            schema=self.spec.schema,
            application_name=f"leadflow-{self.spec.name}",
            min_size=s.db_pool_min_size,
            max_size=s.db_pool_max_size,
        )
        async with self._pool.acquire() as conn:
            await migrate(conn, TENANCY_SCHEMA, tenancy_migrations())
            await migrate(conn, self.spec.schema, self.spec.migrations())
        self._key_store = KeyStore(self._pool, cache_seconds=s.auth_cache_seconds)
        self._tenants = TenantDirectory(self._pool)
        self._bus = await Bus.connect(
            s.nats_url,
            name=f"leadflow-{self.spec.name}",
            namespace=s.bus_namespace,
            limits=stream_limits(s),
        )
        if self.spec.stream is not None:
            await self._bus.ensure_stream(self.spec.stream)

    async def _wait(self, running: dict[asyncio.Task[None], str]) -> BaseException | None:
        """Until a stop is requested or a background task ends (which is a failure)."""
        stop_waiter: asyncio.Task[Any] = asyncio.create_task(self._stop.wait())
        try:
            waiting: list[asyncio.Task[Any]] = [stop_waiter, *running]
            done, _ = await asyncio.wait(waiting, return_when=asyncio.FIRST_COMPLETED)
        finally:
            stop_waiter.cancel()
        for task in done:
            if task is stop_waiter:
                continue
            name = running.pop(task)
            error = task.exception() if not task.cancelled() else None
            log.error("task_failed", task=name, error=repr(error))
            return error or RuntimeError(f"background task {name} stopped unexpectedly")
        return None

    async def _shutdown(
        self,
        running: dict[asyncio.Task[None], str],
        consumer_tasks: list[asyncio.Task[None]],
        consumer_stop: asyncio.Event,
        task_stop: asyncio.Event,
    ) -> None:
        grace = self.settings.shutdown_grace_seconds
        log.info("service_stopping", service=self.spec.name)
        self._ready = False
        if self._server is not None:
            with contextlib.suppress(Exception):
                await self._server.enter_graceful_shutdown()
        consumer_stop.set()
        await _finish(consumer_tasks, grace)
        if self._server is not None:
            with contextlib.suppress(Exception):
                await self._server.stop(grace)
        task_stop.set()
        await _finish([t for t in running if t not in consumer_tasks], grace)
        if self._bus is not None:
            await self._bus.drain()
        if self._pool is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._pool.close(), grace)
        log.info("service_stopped", service=self.spec.name)

    async def _authenticate(self, api_key: str) -> Principal | None:
        if self._key_store is None:
            return None
        return await self._key_store.authenticate(api_key)


async def _finish(tasks: list[asyncio.Task[None]], grace: float) -> None:
    """Let tasks end on their own within `grace`, then cancel the stragglers."""
    if not tasks:
        return
    _, pending = await asyncio.wait(tasks, timeout=grace)
    for task in pending:
        task.cancel()
    if pending:
        await asyncio.wait(pending, timeout=1.0)
        log.warning("tasks_cancelled", count=len(pending))
