"""One trace from a Track call to the routed lead's webhook and into every service.

The five services run as separate processes (as `leadflow up` runs them), each exporting its
spans over OTLP/gRPC to a receiver this test runs. A ModuMind lead is identified (routed and
delivered once, in its own trace), then its high-intent events are tracked in one call.
Scoring is started only then, so its first fetch holds the identify, consent and events
messages together and applies them as one batch: the events' trace must go on past the
batch. The Track call's trace must reach ingest, scoring, attribution, routing (the decision
and the later sink delivery, whose webhook request carries the trace on) and reporting, with
each span under the one that caused it.
"""

from __future__ import annotations

import contextlib
import json
import signal
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from harness import auth, eventually, new_key
from ingest_support import event, now
from processes import service_env
from routing_support import SECRET, WebhookReceiver, example_config

from leadflow.common.v1 import lead_pb2, subject_pb2
from leadflow.ingest.v1 import ingest_service_pb2 as ingest_pb
from leadflow.ingest.v1 import ingest_service_pb2_grpc, profile_pb2
from leadflow.routing.v1 import routing_service_pb2 as routing_pb
from leadflow.routing.v1 import routing_service_pb2_grpc
from leadflow_attribution.app import SPEC as ATTRIBUTION
from leadflow_ingest.app import SPEC as INGEST
from leadflow_platform.embedded import free_port
from leadflow_platform.grpc.client import health_status, open_channel
from leadflow_platform.provision import provision_all
from leadflow_platform.settings import Settings
from leadflow_platform.telemetry import tracer
from leadflow_platform.traces import SpanRecord, TraceReceiver, ancestry
from leadflow_reporting.app import SPEC as REPORTING
from leadflow_routing.api.mapping import config_to_proto
from leadflow_routing.app import SPEC as ROUTING
from leadflow_scoring.app import SPEC as SCORING

pytestmark = pytest.mark.integration

TENANT = "371minds"
LEAD = "lead-ada"
SERVICES = ("ingest", "scoring", "attribution", "routing", "reporting")
TRACK = "/leadflow.ingest.v1.IngestService/TrackBatch"


class Suite:
    """The services as processes, each on a port of its own, exporting spans to `otlp`."""

    def __init__(self, settings: Settings, otlp: str, logs: Path, secrets: Path) -> None:
        self._settings = settings
        self._otlp = otlp
        self._logs = logs
        self._secrets = secrets
        self.ports: dict[str, int] = {}
        self._processes: dict[str, subprocess.Popen[bytes]] = {}

    def start(self, name: str) -> None:
        port = free_port()
        env = service_env(
            self._settings,
            LEADFLOW_GRPC_PORT=str(port),
            OTEL_EXPORTER_OTLP_ENDPOINT=self._otlp,
            OTEL_BSP_SCHEDULE_DELAY="100",
            LEADFLOW_ROUTING_SECRETS_FILE=str(self._secrets),
            LEADFLOW_ROUTING_DELIVERY_POLL_SECONDS="0.05",
        )
        env.pop("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", None)
        log = (self._logs / f"{name}.log").open("wb")
        self._processes[name] = subprocess.Popen(
            [sys.executable, "-m", f"leadflow_{name}"], env=env, stdout=log, stderr=log
        )
        self.ports[name] = port

    async def serving(self, *names: str) -> None:
        async def all_serving() -> bool:
            for name in names:
                code = self._processes[name].poll()
                assert code is None, f"{name} exited with {code}: see {self._logs / name}.log"
                if await health_status(f"127.0.0.1:{self.ports[name]}") != "SERVING":
                    return False
            return True

        await eventually(all_serving, timeout=60, interval=0.2)

    def stop(self) -> None:
        for process in self._processes.values():
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        for process in self._processes.values():
            try:
                process.wait(20)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(5)


@contextlib.contextmanager
def _suite(settings: Settings, otlp: str, tmp_path: Path) -> Iterator[Suite]:
    secrets = tmp_path / "routing-secrets.json"
    secrets.write_text(json.dumps({"modumind-webhook": SECRET}))
    suite = Suite(settings, otlp, tmp_path, secrets)
    try:
        yield suite
    finally:
        suite.stop()


@contextlib.asynccontextmanager
async def _channel(suite: Suite, name: str) -> AsyncIterator[object]:
    async with open_channel(f"127.0.0.1:{suite.ports[name]}") as channel:
        yield channel


async def test_a_track_call_is_one_trace_from_ingest_to_the_routed_leads_webhook(
    settings, tmp_path, spans
):
    await provision_all(settings, [INGEST, SCORING, ATTRIBUTION, ROUTING, REPORTING])
    key = await new_key(settings.database_url, TENANT, "admin")
    webhook = WebhookReceiver()
    at = now() - timedelta(seconds=30)
    with TraceReceiver() as otlp, _suite(settings, otlp.endpoint, tmp_path) as suite:
        async with webhook.serving():
            for name in ("ingest", "attribution", "routing", "reporting"):
                suite.start(name)
            await suite.serving("ingest", "attribution", "routing", "reporting")
            async with _channel(suite, "ingest") as ic, _channel(suite, "routing") as rc:
                ingest = ingest_service_pb2_grpc.IngestServiceStub(ic)
                routing = routing_service_pb2_grpc.RoutingServiceStub(rc)
                await routing.PutRoutingConfig(
                    routing_pb.PutRoutingConfigRequest(
                        config=config_to_proto(example_config(webhook.url))
                    ),
                    metadata=auth(key),
                )
                await ingest.Identify(
                    ingest_pb.IdentifyRequest(
                        lead_id=LEAD,
                        profile=profile_pb2.LeadProfile(
                            email="ada@example.com",
                            first_name="Ada",
                            home_brand_id="modumind",
                            segment=lead_pb2.SEGMENT_SMB,
                            customer_type="enterprise",
                            location=profile_pb2.Location(country="US"),
                            lead_source="referral",
                        ),
                    ),
                    metadata=auth(key),
                )
                # Routed when identified (rule modumind-new-cold): routing knows the lead.
                await eventually(lambda: len(webhook.accepted) >= 1, timeout=20)
                granted = profile_pb2.ConsentDecision(
                    status=profile_pb2.CONSENT_STATUS_GRANTED, source="test"
                )
                await ingest.SetConsent(
                    ingest_pb.SetConsentRequest(
                        subject=subject_pb2.SubjectRef(lead_id=LEAD), email=granted
                    ),
                    metadata=auth(key),
                )
                with tracer().start_as_current_span("track ada") as caller:
                    reply = await ingest.TrackBatch(
                        ingest_pb.TrackBatchRequest(
                            events=[
                                event("a-pv1", type="page_view", lead_id=LEAD, occurred_at=at),
                                event(
                                    "a-pv2",
                                    type="page_view",
                                    lead_id=LEAD,
                                    occurred_at=at,
                                    page_url="https://modumind.example/pricing?utm_source=news"
                                    "letter&utm_medium=email&utm_campaign=spring",
                                ),
                                event("a-open", type="email_opened", lead_id=LEAD, occurred_at=at),
                                event(
                                    "a-form", type="form_submitted", lead_id=LEAD, occurred_at=at
                                ),
                            ]
                        ),
                        metadata=auth(key),
                    )
                assert reply.accepted == 4
                trace_id = f"{caller.get_span_context().trace_id:032x}"
                # Scoring starts now: its first fetch is the three messages, one batch.
                suite.start("scoring")
                await suite.serving("scoring")

                def in_trace() -> list:
                    return [
                        r
                        for r in webhook.accepted.values()
                        if r.headers.get("traceparent", "").split("-")[1:2] == [trace_id]
                    ]

                # C+ and warm: routed again (rule modumind-home), now in the Track's trace.
                delivered = await eventually(in_trace, timeout=30)

            def everything_exported() -> dict[str, SpanRecord] | None:
                """The trace once every span asserted below has been exported."""
                so_far = {s.span_id: s for s in otlp.store.trace(trace_id)}

                def under(parent_id: str, service: str, kind: str, name: str) -> list:
                    return [
                        s
                        for s in so_far.values()
                        if (s.parent_span_id, s.service, s.kind, s.name)
                        == (parent_id, service, kind, name)
                    ]

                for request in delivered:
                    attempt = so_far.get(request.headers["traceparent"].split("-")[2])
                    if attempt is None:
                        return None
                    routed = under(
                        attempt.parent_span_id,
                        "leadflow-routing",
                        "PRODUCER",
                        "routing.lead.routed publish",
                    )
                    if not routed or not under(
                        routed[0].span_id,
                        "leadflow-reporting",
                        "CONSUMER",
                        "routing.lead.routed process",
                    ):
                        return None
                wanted = {
                    ("leadflow-reporting", "CONSUMER", "scoring.score.changed process"),
                    ("leadflow-reporting", "CONSUMER", "ingest.event.recorded process"),
                    ("leadflow-attribution", "CONSUMER", "ingest.event.recorded process"),
                    ("leadflow-scoring", "CONSUMER", "ingest.event.recorded process"),
                }
                got = {(s.service, s.kind, s.name) for s in so_far.values()}
                return so_far if wanted <= got else None

            received = await eventually(everything_exported, timeout=20, interval=0.2)

    def one(service: str, kind: str, name: str, parent: SpanRecord) -> SpanRecord:
        found = [
            s
            for s in received.values()
            if (s.service, s.kind, s.name, s.parent_span_id)
            == (service, kind, name, parent.span_id)
        ]
        assert len(found) == 1, (service, kind, name, parent.name, found)
        return found[0]

    def shape(chain: list[SpanRecord]) -> list[tuple[str, str, str]]:
        return [(s.service, s.kind, s.name) for s in chain]

    # Every span of the trace is the suite's, and the trace starts at the Track call (whose
    # client span, in this process, is the caller's child).
    assert {s.service for s in received.values()} == {f"leadflow-{n}" for n in SERVICES}
    (server,) = [s for s in received.values() if s.kind == "SERVER"]
    assert (server.service, server.name) == ("leadflow-ingest", TRACK)
    (client,) = [
        s
        for s in spans.get_finished_spans()
        if s.parent is not None and s.parent.span_id == caller.get_span_context().span_id
    ]
    assert (client.kind.name, client.name) == ("CLIENT", TRACK)
    assert server.parent_span_id == f"{client.context.span_id:016x}"
    recorded = one("leadflow-ingest", "PRODUCER", "ingest.event.recorded publish", server)
    one("leadflow-attribution", "CONSUMER", "ingest.event.recorded process", recorded)
    one("leadflow-reporting", "CONSUMER", "ingest.event.recorded process", recorded)
    scored = one("leadflow-scoring", "CONSUMER", "ingest.event.recorded process", recorded)

    # Scoring applied it in a batch: the batch's span (a trace of its own, linked to each
    # message's producer) is linked to the message's span.
    assert scored.attributes["messaging.consumer.group.name"] == "scoring-ingest-events"
    ((batch_trace, batch_id),) = scored.links
    (batch,) = [s for s in otlp.store.trace(batch_trace) if s.span_id == batch_id]
    assert (batch.service, batch.kind, batch.parent_span_id) == ("leadflow-scoring", "CONSUMER", "")
    assert batch.attributes["messaging.batch.message_count"] == 3
    assert (trace_id, recorded.span_id) in batch.links

    # Each delivered webhook of this trace: its attempt span, the decision's consumer span,
    # scoring's publish, scoring's batch message span, ingest's publish, the Track call.
    assert delivered
    for request in delivered:
        _, _, span_id, _ = request.headers["traceparent"].split("-")
        attempt = received[span_id]
        chain = ancestry(attempt, received)
        assert chain[-1] is server
        trigger = chain[1].name.removesuffix(" process")
        assert shape(chain) == [
            ("leadflow-routing", "CLIENT", "webhook delivery"),
            ("leadflow-routing", "CONSUMER", f"{trigger} process"),
            ("leadflow-scoring", "PRODUCER", f"{trigger} publish"),
            ("leadflow-scoring", "CONSUMER", "ingest.event.recorded process"),
            ("leadflow-ingest", "PRODUCER", "ingest.event.recorded publish"),
            ("leadflow-ingest", "SERVER", TRACK),
        ]
        assert trigger in ("scoring.threshold.crossed", "scoring.stage.changed")
        assert chain[3] is scored
        assert attempt.attributes["leadflow.delivery_id"] == request.json["metadata"]["eventId"]
        assert attempt.status != "ERROR"
        routed = one("leadflow-routing", "PRODUCER", "routing.lead.routed publish", chain[1])
        one("leadflow-reporting", "CONSUMER", "routing.lead.routed process", routed)
    assert {r.json["trigger"] for r in delivered} <= {
        "ROUTING_TRIGGER_THRESHOLD_CROSSED",
        "ROUTING_TRIGGER_STAGE_CHANGED",
    }
    # Scoring's score change reached reporting in the same trace too.
    changed = one("leadflow-scoring", "PRODUCER", "scoring.score.changed publish", scored)
    one("leadflow-reporting", "CONSUMER", "scoring.score.changed process", changed)

    # Health checks and the services' polls (a query outside any trace) start no traces.
    everything = otlp.store.spans()
    assert not [s for s in everything if s.name.startswith("/grpc.health.v1.Health/")]
    assert not [s for s in everything if not s.parent_span_id and "db.system" in s.attributes]

    # The identify call was routed and delivered in a trace of its own.
    identified = [
        r for r in webhook.accepted.values() if r.json["trigger"] == "ROUTING_TRIGGER_IDENTIFIED"
    ]
    assert len(identified) == 1
    assert identified[0].headers["traceparent"].split("-")[1] != trace_id
