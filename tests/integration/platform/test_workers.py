"""LEADFLOW_WORKERS: several processes behind one port, stopped together."""

from __future__ import annotations

import asyncio
import signal

import psutil
import pytest
from harness import auth, eventually, new_key
from probe.contracts import probe_pb2, probe_pb2_grpc
from processes import start_probe

from leadflow_platform.grpc.client import health_status, open_channel

pytestmark = pytest.mark.integration


async def _serving(target: str) -> bool:
    return await health_status(target) == "SERVING"


async def test_two_workers_share_the_port_and_stop_together(settings):
    key = await new_key(settings.database_url, "acme", "admin")
    supervisor, port = start_probe(settings, LEADFLOW_WORKERS="2")
    target = f"127.0.0.1:{port}"
    try:
        await eventually(lambda: _serving(target), timeout=60)
        workers = psutil.Process(supervisor.pid).children()
        assert len(workers) == 2
        # Separate connections land on either worker; every call is served.
        replies = []
        for _ in range(8):
            async with open_channel(target, own_connection=True) as channel:
                stub = probe_pb2_grpc.ProbeServiceStub(channel)
                replies.append(await stub.Record(probe_pb2.RecordRequest(note="w"),
                                                 metadata=auth(key)))  # fmt: skip
        assert len(replies) == 8
        supervisor.send_signal(signal.SIGTERM)
        assert await asyncio.to_thread(supervisor.wait, 30) == 0
        assert not any(w.is_running() and w.status() != psutil.STATUS_ZOMBIE for w in workers)
    finally:
        if supervisor.poll() is None:
            supervisor.kill()


async def test_a_worker_that_dies_takes_the_service_down_for_a_restart(settings):
    supervisor, port = start_probe(settings, LEADFLOW_WORKERS="2")
    try:
        await eventually(lambda: _serving(f"127.0.0.1:{port}"), timeout=60)
        first, second = psutil.Process(supervisor.pid).children()
        first.kill()
        assert await asyncio.to_thread(supervisor.wait, 30) == 1
        second.wait(10)
        assert not second.is_running()
    finally:
        if supervisor.poll() is None:
            supervisor.kill()
