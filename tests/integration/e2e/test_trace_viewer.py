"""The local trace viewer: spans exported over OTLP/gRPC reach its receiver and its page
shows them as trees; `leadflow up --traces` runs it and points every service at it."""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request

import pytest
from harness import auth, eventually, new_key
from opentelemetry import trace
from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from probe.contracts import probe_pb2, probe_pb2_grpc
from processes import SUPPORT, install_probe_entry_point

from leadflow_platform.grpc.client import open_channel
from leadflow_platform.traces import TraceReceiver, TraceViewer

pytestmark = pytest.mark.integration


def _get(url: str) -> tuple[int, dict[str, str], str]:
    try:
        with urllib.request.urlopen(url, timeout=10) as response:
            return response.status, dict(response.headers), response.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, dict(error.headers), error.read().decode()


def test_spans_exported_over_otlp_grpc_show_on_the_page_as_trees():
    with (
        TraceReceiver() as receiver,
        TraceViewer(receiver.store, receiver_endpoint=receiver.endpoint) as viewer,
    ):
        status, _, page = _get(viewer.url)
        assert status == 200 and "No spans yet" in page

        provider = TracerProvider(resource=Resource.create({"service.name": "leadflow-ingest"}))
        provider.add_span_processor(
            SimpleSpanProcessor(OTLPSpanExporter(endpoint=receiver.endpoint))
        )
        tracer = provider.get_tracer("test")
        with tracer.start_as_current_span("/leadflow.ingest.v1.IngestService/TrackBatch") as call:
            with tracer.start_as_current_span(
                "ingest.event.recorded publish", kind=trace.SpanKind.PRODUCER
            ):
                pass
        with tracer.start_as_current_span("<b>another</b>") as other:
            pass
        provider.shutdown()
        trace_id = f"{call.get_span_context().trace_id:032x}"

        assert receiver.store.received == 3
        status, headers, page = _get(viewer.url)
        assert status == 200
        assert headers["Content-Type"] == "text/html; charset=utf-8"
        assert headers["Content-Security-Policy"].startswith("default-src 'none'")
        assert "2 most recent traces of 3 spans received" in page
        assert "&lt;b&gt;another&lt;/b&gt;" in page and "<b>another" not in page
        rows = re.findall(r'padding-left:([\d.]+)rem">([^<]+)<', page)
        assert ("0.6", "/leadflow.ingest.v1.IngestService/TrackBatch") in rows
        assert ("1.8", "ingest.event.recorded publish") in rows
        assert '<span class="svc">leadflow-ingest</span>' in page

        _, _, one = _get(f"{viewer.url}?trace={trace_id}")
        assert "ingest.event.recorded publish" in one and "another" not in one
        assert f"{other.get_span_context().trace_id:032x}" not in one
        assert _get(f"{viewer.url}?trace=nothex")[0] == 400
        assert _get(f"{viewer.url}elsewhere")[0] == 404


async def test_up_with_traces_shows_a_call_and_its_consumer_in_the_viewer(tmp_path, settings):
    site = tmp_path / "site"
    install_probe_entry_point(site)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("LEADFLOW_", "OTEL_"))}
    env.update(
        PYTHONPATH=os.pathsep.join([str(site), str(SUPPORT), *sys.path]),
        LEADFLOW_DATA_DIR=str(tmp_path / "data"),
        LEADFLOW_DATABASE_URL=settings.database_url,
        LEADFLOW_NATS_URL=settings.nats_url,
        LEADFLOW_BUS_NAMESPACE=settings.bus_namespace,
        LEADFLOW_STREAM_MAX_BYTES=str(settings.stream_max_bytes),
        LEADFLOW_LOG_FORMAT="json",
        LEADFLOW_LOG_LEVEL="warning",
        OTEL_BSP_SCHEDULE_DELAY="100",
        COLUMNS="200",
    )
    up = subprocess.Popen(
        [sys.executable, "-m", "leadflow_platform.cli", "up", "--only", "probe", "--traces"],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    try:
        output = await asyncio.to_thread(_until_up, up)
        assert "leadflow is up" in output, output
        viewer_row = next(line for line in output.splitlines() if "trace viewer" in line)
        url = re.search(r"http://[\d.]+:\d+/", viewer_row)
        assert url is not None, output
        receiver_row = next(line for line in output.splitlines() if "otlp receiver" in line)
        assert re.search(r"http://[\d.]+:\d+", receiver_row), output
        stack = json.loads((tmp_path / "data" / "stack.json").read_text())
        key = await new_key(settings.database_url, "acme", "admin")
        async with open_channel(stack["services"]["probe"]) as channel:
            stub = probe_pb2_grpc.ProbeServiceStub(channel)
            await stub.Record(probe_pb2.RecordRequest(note="traced"), metadata=auth(key))

        async def shown() -> str | None:
            page = (await asyncio.to_thread(_get, url.group(0)))[2]
            wanted = ("/leadflow_test.v1.ProbeService/Record", "probe.note.recorded process")
            return page if all(w in page for w in wanted) else None

        page = await eventually(shown, timeout=30, interval=0.2)
        assert '<span class="svc">leadflow-probe</span>' in page
        up.send_signal(signal.SIGINT)
        assert await asyncio.to_thread(up.wait, 60) == 0
    finally:
        if up.poll() is None:
            up.send_signal(signal.SIGINT)
            try:
                up.wait(60)
            except subprocess.TimeoutExpired:
                up.kill()


def _until_up(up: subprocess.Popen[str]) -> str:
    assert up.stdout is not None
    lines = []
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        line = up.stdout.readline()
        lines.append(line)
        if "leadflow is up" in line or up.poll() is not None:
            break
    return "".join(lines)
