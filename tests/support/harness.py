"""Running services and calling them in tests."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Callable

import asyncpg

from leadflow_platform.db.migrations_runner import migrate
from leadflow_platform.lifecycle import Runtime
from leadflow_platform.service import ServiceSpec, tenancy_migrations
from leadflow_platform.settings import Settings
from leadflow_platform.tenancy.keys import parse_scopes
from leadflow_platform.tenancy.store import SCHEMA, create_key

# JetStream's smallest duplicate window. Tests that must see re-published copies land in the
# stream (to prove the consumer's inbox drops them) use it and wait past it.
SHORT_DUPLICATE_WINDOW = 0.1


@contextlib.asynccontextmanager
async def running(spec: ServiceSpec, settings: Settings) -> AsyncIterator[Runtime]:
    """Run a service in this process until the block ends, then shut it down in order."""
    runtime = Runtime(spec, settings)
    task = asyncio.create_task(runtime.run(install_signal_handlers=False))
    deadline = time.monotonic() + 30
    while not runtime.ready:
        if task.done():
            task.result()  # raises the startup error
            raise RuntimeError("service stopped before it was ready")
        if time.monotonic() > deadline:
            task.cancel()
            raise TimeoutError(f"{spec.name} not ready after 30 s")
        await asyncio.sleep(0.02)
    try:
        yield runtime
    finally:
        runtime.request_stop()
        await asyncio.wait_for(task, 30)


async def new_key(database_url: str, tenant: str, *scopes: str) -> str:
    conn = await asyncpg.connect(database_url)
    try:
        await migrate(conn, SCHEMA, tenancy_migrations())
        key = await create_key(conn, tenant, parse_scopes(list(scopes) or ["admin"]))
    finally:
        await conn.close()
    return key.token


def auth(token: str) -> tuple[tuple[str, str], ...]:
    return (("authorization", f"Bearer {token}"),)


async def eventually(
    check: Callable[[], object], *, timeout: float = 10.0, interval: float = 0.05
) -> object:
    """Poll an (async or sync) check until it returns a truthy value, or fail with the last."""
    deadline = time.monotonic() + timeout
    last: object = None
    while time.monotonic() < deadline:
        last = check()
        if asyncio.iscoroutine(last):
            last = await last
        if last:
            return last
        await asyncio.sleep(interval)
    raise AssertionError(f"condition not met within {timeout}s (last value: {last!r})")


async def open_service_pool(database_url: str, spec: ServiceSpec) -> asyncpg.Pool:
    """A pool on the service's schema, after applying its migrations."""
    from leadflow_platform.db.pool import create_pool

    conn = await asyncpg.connect(database_url)
    try:
        await migrate(conn, spec.schema, spec.migrations())
    finally:
        await conn.close()
    return await create_pool(
        database_url, schema=spec.schema, application_name="leadflow-test", max_size=10
    )


def metric_sum(reader: object, name: str, **attributes: str) -> float:
    """The summed value of metric `name`'s points whose attributes include `attributes`, as
    an in-memory metric reader holds it now (0 when none)."""
    data = reader.get_metrics_data()  # type: ignore[attr-defined]
    total = 0.0
    wanted = set(attributes.items())
    for resource in data.resource_metrics if data else ():
        for scope in resource.scope_metrics:
            for metric in scope.metrics:
                if metric.name != name:
                    continue
                for point in metric.data.data_points:
                    if wanted <= set(dict(point.attributes or {}).items()):
                        total += getattr(point, "value", getattr(point, "count", 0))
    return total
