"""Startup and shutdown: NOT_SERVING until the service can work; SIGTERM finishes in-flight
work before the process exits."""

from __future__ import annotations

import asyncio
import signal
import time
from urllib.parse import urlsplit, urlunsplit

import grpc
import pytest
from harness import auth, eventually, new_key, running
from probe.contracts import probe_pb2, probe_pb2_grpc
from probe.service import SPEC
from processes import start_probe
from tcp_gate import TcpGate

from leadflow_platform.grpc.client import health_status, open_channel
from leadflow_platform.lifecycle import Runtime

pytestmark = pytest.mark.integration


async def test_not_serving_until_the_database_answers(settings):
    key = await new_key(settings.database_url, "acme", "read")
    url = urlsplit(settings.database_url)
    gate = TcpGate(url.hostname or "127.0.0.1", url.port or 5432)
    gated = settings.with_overrides(
        database_url=urlunsplit(url._replace(netloc=f"{url.username}@127.0.0.1:{gate.port}"))
    )
    runtime = Runtime(SPEC, gated)
    task = asyncio.create_task(runtime.run(install_signal_handlers=False))
    try:
        await eventually(lambda: runtime.port, timeout=10)
        target = f"127.0.0.1:{runtime.port}"
        await asyncio.sleep(1.0)  # the database stays unreachable for a while
        assert await health_status(target) == "NOT_SERVING"
        async with open_channel(target) as channel:
            stub = probe_pb2_grpc.ProbeServiceStub(channel)
            with pytest.raises(grpc.aio.AioRpcError) as refused:
                await stub.Read(probe_pb2.ReadRequest(note="x"), metadata=auth(key))
            assert refused.value.code() == grpc.StatusCode.UNAVAILABLE
            await gate.open()
            await eventually(lambda: health_status(target), timeout=20)
            await eventually(lambda: _equals(health_status(target), "SERVING"), timeout=20)
            reply = await stub.Read(probe_pb2.ReadRequest(note="x"), metadata=auth(key))
            assert reply.applied == 0
    finally:
        runtime.request_stop()
        await asyncio.wait_for(task, 30)
        await gate.close()


async def _equals(awaitable, expected) -> bool:
    return (await awaitable) == expected


async def test_sigterm_finishes_in_flight_call_and_message_then_exits_cleanly(settings):
    key = await new_key(settings.database_url, "acme", "admin")
    process, port = start_probe(settings, LEADFLOW_SHUTDOWN_GRACE_SECONDS="10")
    target = f"127.0.0.1:{port}"
    try:
        await eventually(lambda: _equals(health_status(target), "SERVING"), timeout=30)
        async with open_channel(target) as channel:
            stub = probe_pb2_grpc.ProbeServiceStub(channel)
            # A message the consumer will still be applying when SIGTERM arrives...
            await stub.Record(
                probe_pb2.RecordRequest(note="slow-message", consumer_sleep_ms=2000),
                metadata=auth(key),
            )
            await asyncio.sleep(0.7)  # relayed and picked up by the consumer
            # ...and a call still running when SIGTERM arrives.
            call = asyncio.ensure_future(
                stub.Record(
                    probe_pb2.RecordRequest(note="slow-call", rpc_sleep_ms=1500),
                    metadata=auth(key),
                )
            )
            await asyncio.sleep(0.3)
            sent_at = time.monotonic()
            process.send_signal(signal.SIGTERM)
            await eventually(lambda: _equals(health_status(target), "NOT_SERVING"), timeout=5)
            with pytest.raises(grpc.aio.AioRpcError) as refused:
                await stub.Record(probe_pb2.RecordRequest(note="late"), metadata=auth(key))
            assert refused.value.code() == grpc.StatusCode.UNAVAILABLE
            reply = await call  # the in-flight call completes normally
            assert reply.tenant_id == "acme"
        code = await asyncio.to_thread(process.wait, 20)
        took = time.monotonic() - sent_at
    finally:
        if process.poll() is None:
            process.kill()
    output = process.stdout.read().decode() if process.stdout else ""
    assert code == 0, output
    assert took < 10, f"shutdown took {took:.1f}s"
    async with running(SPEC, settings) as runtime:  # inspect what the first process left
        notes = {r["note"] for r in await runtime.pool.fetch("SELECT note FROM notes")}
        assert notes == {"slow-message", "slow-call"}
        assert output.index("service_stopping") < output.index("service_stopped")

        async def applied_once_each() -> bool:
            rows = await runtime.pool.fetch("SELECT note, count(*) AS n FROM applied GROUP BY note")
            return {r["note"]: r["n"] for r in rows} == {"slow-message": 1, "slow-call": 1}

        # slow-message was applied by the first process before it exited; slow-call's event
        # was published by its final relay pass and is applied by this one.
        await eventually(applied_once_each, timeout=10)
        first_applied = await runtime.pool.fetchval(
            "SELECT min(applied_at) FROM applied WHERE note = 'slow-message'"
        )
        assert first_applied is not None
