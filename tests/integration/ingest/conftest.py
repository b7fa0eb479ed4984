from __future__ import annotations

import pytest
from harness import new_key, running

from leadflow.ingest.v1 import ingest_service_pb2_grpc
from leadflow_ingest.app import SPEC
from leadflow_platform.grpc.client import open_channel


class Ingest:
    """A running ingest service and a client for it."""

    def __init__(self, runtime, stub, settings) -> None:
        self.runtime = runtime
        self.stub = stub
        self.settings = settings

    @property
    def pool(self):
        return self.runtime.pool


@pytest.fixture
async def ingest(settings):
    async with running(SPEC, settings) as runtime:
        async with open_channel(f"127.0.0.1:{runtime.port}") as channel:
            yield Ingest(runtime, ingest_service_pb2_grpc.IngestServiceStub(channel), settings)


@pytest.fixture
async def writer_key(settings):
    return await new_key(settings.database_url, "371minds", "ingest")


@pytest.fixture
async def admin_key(settings):
    return await new_key(settings.database_url, "371minds", "admin")
