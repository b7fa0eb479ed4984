"""Tenant isolation, RPC by RPC: tenant B's valid key naming tenant A's objects gets
nothing of A.

Tenant A's data goes through all five services (events, identified and aliased leads,
consent, scores, a stage change, a rescoring job, conversions and credits, a routing
config, assignments and enrollments, a scoring model, an alert config). Then every RPC of
every service (enumerated from the generated descriptors: a new RPC fails
`test_every_rpc_has_a_row` until it has a row here) is called with a request naming A's
objects (A's lead ids, anonymous id, email, conversion ids, assignment ids, config
versions, job id, A's time ranges):

- as A: the request is a valid one (OK), and where the row says so A's answer shows A's
  data (so the refusals below are not a wrong request's);
- read RPCs as B: refused (NOT_FOUND / PERMISSION_DENIED) or exactly what tenant C, who
  has no data at all, gets for the same request; and no answer (every message serialized,
  stream items included) contains any of A's ids, emails or names beyond what the request
  itself sent;
- write RPCs as B (track, identify, alias, consent, erase, stage change, acknowledge,
  route, configs): refused or applied to B only; A's rows in every tenant table are the
  same before and after (digest per table);
- a read-only key on every RPC that needs more: PERMISSION_DENIED; a bad key on every RPC:
  UNAUTHENTICATED.
"""

from __future__ import annotations

import asyncio
import difflib
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import grpc
import pytest
from google.protobuf import descriptor_pool, text_format
from harness import auth
from ingest_support import event, now, ts
from isolation_support import STUBS, TenantData, World, tenant_data, world
from routing_support import example_config

from leadflow.attribution.v1 import attribution_service_pb2 as attribution_pb
from leadflow.attribution.v1 import attribution_types_pb2 as attribution_types
from leadflow.common.v1 import event_type_pb2, lead_pb2, subject_pb2, time_range_pb2
from leadflow.ingest.v1 import ingest_service_pb2 as ingest_pb
from leadflow.ingest.v1 import profile_pb2
from leadflow.reporting.v1 import alerts_pb2
from leadflow.reporting.v1 import report_types_pb2 as rt
from leadflow.reporting.v1 import reporting_service_pb2 as reporting_pb
from leadflow.routing.v1 import routing_service_pb2 as routing_pb
from leadflow.scoring.v1 import scoring_service_pb2 as scoring_pb
from leadflow_platform.grpc.interceptors import required_scope
from leadflow_platform.tenancy.keys import Scope
from leadflow_routing.api.mapping import config_to_proto

pytestmark = pytest.mark.integration

A, B, C = "tenant-a", "tenant-b", "tenant-c"
SERVICES = {
    "ingest": "leadflow.ingest.v1.IngestService",
    "scoring": "leadflow.scoring.v1.ScoringService",
    "attribution": "leadflow.attribution.v1.AttributionService",
    "routing": "leadflow.routing.v1.RoutingService",
    "reporting": "leadflow.reporting.v1.ReportingService",
}
REFUSED = {grpc.StatusCode.NOT_FOUND, grpc.StatusCode.PERMISSION_DENIED}
# A write naming A's version of a config is stale for B: refused as a conflict.
WRITE_REFUSED = REFUSED | {grpc.StatusCode.FAILED_PRECONDITION, grpc.StatusCode.ABORTED}


@dataclass(frozen=True)
class Row:
    build: Callable[[TenantData], Any]  # A's objects -> the request (a list: a stream)
    shows: bool = False  # A's own answer names A's data (a positive control)


def _range() -> time_range_pb2.TimeRange:
    return time_range_pb2.TimeRange(
        start_time=ts(now() - timedelta(days=3)), end_time=ts(now() + timedelta(hours=1))
    )


def _lead(a: TenantData) -> subject_pb2.SubjectRef:
    return subject_pb2.SubjectRef(lead_id=a.lead)


def _sel(kind: int) -> rt.EventSelector:
    return rt.EventSelector(event_type=kind)


PAGE, FORM = event_type_pb2.EVENT_TYPE_PAGE_VIEW, event_type_pb2.EVENT_TYPE_FORM_SUBMITTED
BUY = event_type_pb2.EVENT_TYPE_PURCHASE


def _funnel() -> rt.FunnelDefinition:
    steps = [rt.FunnelStep(event=_sel(PAGE)), rt.FunnelStep(event=_sel(BUY))]
    return rt.FunnelDefinition(range=_range(), steps=steps)


def _track(a: TenantData, n: int) -> Any:
    return event(f"ev-{a.tag}-{n}", lead_id=a.lead, properties={"path": f"/home-{a.tag}"})


def _withdrawn() -> profile_pb2.ConsentDecision:
    return profile_pb2.ConsentDecision(status=profile_pb2.CONSENT_STATUS_WITHDRAWN, source="x")


ALL_MODELS = [attribution_types.ATTRIBUTION_MODEL_FIRST_TOUCH]
CHANNEL = attribution_types.ATTRIBUTION_DIMENSION_CHANNEL

ROWS: dict[str, Row] = {
    # ingest (all writes: B's events under A's ids are B's own)
    "ingest/Track": Row(lambda a: ingest_pb.TrackRequest(event=_track(a, 1))),
    "ingest/TrackBatch": Row(lambda a: ingest_pb.TrackBatchRequest(events=[_track(a, 2)])),
    "ingest/TrackStream": Row(
        lambda a: [ingest_pb.TrackStreamRequest(sequence=1, events=[_track(a, 3)])]
    ),
    "ingest/Identify": Row(
        lambda a: ingest_pb.IdentifyRequest(
            lead_id=a.lead, profile=profile_pb2.LeadProfile(email=f"evil@{a.tag}.example.org")
        )
    ),
    "ingest/Alias": Row(
        lambda a: ingest_pb.AliasRequest(anonymous_id=a.anonymous_ids[0], lead_id=a.lead_ids[1])
    ),
    "ingest/SetConsent": Row(
        lambda a: ingest_pb.SetConsentRequest(subject=_lead(a), tracking=_withdrawn())
    ),
    "ingest/EraseSubject": Row(
        lambda a: ingest_pb.EraseSubjectRequest(lead_id=a.lead, email=a.emails[0], reason="x")
    ),
    # scoring
    "scoring/GetScore": Row(lambda a: scoring_pb.GetScoreRequest(lead_id=a.lead), shows=True),
    "scoring/ScoreLeads": Row(
        lambda a: scoring_pb.ScoreLeadsRequest(leads=scoring_pb.LeadIdList(lead_ids=a.lead_ids))
    ),
    "scoring/GetScoringJob": Row(
        lambda a: scoring_pb.GetScoringJobRequest(job_id=a.job_ids[0]), shows=True
    ),
    "scoring/ListLeads": Row(lambda a: scoring_pb.ListLeadsRequest(), shows=True),
    "scoring/GetScoreHistory": Row(
        lambda a: scoring_pb.GetScoreHistoryRequest(lead_id=a.lead), shows=True
    ),
    "scoring/TransitionStage": Row(
        lambda a: scoring_pb.TransitionStageRequest(
            lead_id=a.lead_ids[1], to_stage=lead_pb2.LIFECYCLE_STAGE_LOST, reason="x"
        )
    ),
    "scoring/GetLifecycle": Row(
        lambda a: scoring_pb.GetLifecycleRequest(lead_id=a.lead), shows=True
    ),
    "scoring/PutScoringModel": Row(lambda a: "put-model"),
    "scoring/GetScoringModel": Row(
        lambda a: scoring_pb.GetScoringModelRequest(version=a.model_version)
    ),
    # attribution
    "attribution/GetAttribution": Row(
        lambda a: attribution_pb.GetAttributionRequest(conversion_id=a.conversion_ids[0]),
        shows=True,
    ),
    "attribution/CompareModels": Row(
        lambda a: attribution_pb.CompareModelsRequest(
            dimension=CHANNEL, range=_range(), models=ALL_MODELS
        )
    ),
    "attribution/Summarize": Row(
        lambda a: attribution_pb.SummarizeRequest(
            dimension=CHANNEL, range=_range(), model=ALL_MODELS[0]
        )
    ),
    "attribution/GetJourney": Row(
        lambda a: attribution_pb.GetJourneyRequest(subject=_lead(a), range=_range()), shows=True
    ),
    # routing
    "routing/PutRoutingConfig": Row(
        lambda a: routing_pb.PutRoutingConfigRequest(
            config=config_to_proto(example_config("http://127.0.0.1:9/b")),
            expected_active_version=a.routing_version,
        )
    ),
    "routing/GetRoutingConfig": Row(
        lambda a: routing_pb.GetRoutingConfigRequest(version=a.routing_version)
    ),
    "routing/RouteLead": Row(
        lambda a: routing_pb.RouteLeadRequest(lead_id=a.lead, reason="x", request_id=a.tag)
    ),
    "routing/ExplainRoute": Row(
        lambda a: routing_pb.ExplainRouteRequest(lead_id=a.lead, config_version=a.routing_version)
    ),
    "routing/AcknowledgeAssignment": Row(
        lambda a: routing_pb.AcknowledgeAssignmentRequest(
            assignment_id=a.assignment_ids[0], owner_id=a.owner_ids[0]
        )
    ),
    "routing/ListAssignments": Row(lambda a: routing_pb.ListAssignmentsRequest(), shows=True),
    "routing/ListEnrollments": Row(
        # The example config enrolls no lead of this data set: A's answer is empty too.
        lambda a: routing_pb.ListEnrollmentsRequest(lead_id=a.lead)
    ),
    # reporting
    "reporting/GetRealTime": Row(lambda a: reporting_pb.GetRealTimeRequest(range=_range())),
    "reporting/RunFunnel": Row(lambda a: reporting_pb.RunFunnelRequest(funnel=_funnel())),
    "reporting/ListFunnelDropOffs": Row(
        lambda a: reporting_pb.ListFunnelDropOffsRequest(funnel=_funnel(), step_index=1)
    ),
    "reporting/GetPaths": Row(lambda a: reporting_pb.GetPathsRequest(range=_range())),
    "reporting/GetJourney": Row(
        lambda a: reporting_pb.GetJourneyRequest(subject=_lead(a), range=_range()), shows=True
    ),
    "reporting/GetRetention": Row(
        lambda a: reporting_pb.GetRetentionRequest(
            range=_range(), period=rt.COHORT_PERIOD_DAY, periods=3
        )
    ),
    "reporting/GetLeadQuality": Row(lambda a: reporting_pb.GetLeadQualityRequest(range=_range())),
    "reporting/GetLifecycleFunnel": Row(
        lambda a: reporting_pb.GetLifecycleFunnelRequest(range=_range())
    ),
    "reporting/GetEngagement": Row(lambda a: reporting_pb.GetEngagementRequest(range=_range())),
    "reporting/GetAttributionSummary": Row(
        lambda a: reporting_pb.GetAttributionSummaryRequest(range=_range())
    ),
    "reporting/GetSourceInsights": Row(
        lambda a: reporting_pb.GetSourceInsightsRequest(
            range=_range(), dimensions=[rt.DIMENSION_SOURCE]
        ),
        shows=True,
    ),
    "reporting/GetBestPostingHour": Row(
        lambda a: reporting_pb.GetBestPostingHourRequest(range=_range(), min_sample=1)
    ),
    "reporting/GetAbTest": Row(
        lambda a: reporting_pb.GetAbTestRequest(
            experiment_key="plan",
            variant_property="sku",
            conversion_event=_sel(BUY),
            range=_range(),
        )
    ),
    "reporting/GetPortfolioMetrics": Row(
        lambda a: reporting_pb.GetPortfolioMetricsRequest(range=_range())
    ),
    "reporting/GetWeeklyReport": Row(
        lambda a: reporting_pb.GetWeeklyReportRequest(week_start=ts(now() - timedelta(days=3)))
    ),
    "reporting/Export": Row(
        lambda a: reporting_pb.ExportRequest(
            events=reporting_pb.ExportEventsQuery(range=_range(), subject=_lead(a))
        ),
        shows=True,
    ),
    "reporting/PutAlertConfig": Row(
        lambda a: reporting_pb.PutAlertConfigRequest(
            config=alerts_pb2.AlertConfig(), expected_version=a.alert_version
        )
    ),
    "reporting/GetAlertConfig": Row(
        lambda a: reporting_pb.GetAlertConfigRequest(version=a.alert_version), shows=True
    ),
    "reporting/ListAlerts": Row(lambda a: reporting_pb.ListAlertsRequest(range=_range())),
}


def _full(key: str) -> str:
    service, method = key.split("/")
    return f"/{SERVICES[service]}/{method}"


def _is_read(key: str) -> bool:
    return required_scope(_full(key)) == Scope.READ


@dataclass
class Outcome:
    code: grpc.StatusCode
    text: str  # every response message, text format, in order

    def normalized(self, tenant: str) -> str:
        """Without the tenant's name and the answer's own clock (e.g. real time's "as of")."""
        recent = int(time.time()) - 3600
        lines = []
        for line in self.text.replace(tenant, "<tenant>").splitlines():
            if line.strip().startswith("nanos:"):
                continue
            if line.strip().startswith("seconds:") and int(line.split(":")[1]) > recent:
                line = "seconds: <now>"
            lines.append(line)
        return "\n".join(lines)


async def _call(w: World, key: str, request: Any, md: Any) -> Outcome:
    service, method = key.split("/")
    rpc = getattr(w.stubs[service], method)
    try:
        if isinstance(request, list):  # client stream
            call = rpc(iter(request), metadata=md)
            replies = [r async for r in call] if hasattr(call, "__aiter__") else [await call]
        elif _full(key).endswith("/Export"):
            replies = [r async for r in rpc(request, metadata=md)]
        else:
            replies = [await rpc(request, metadata=md)]
    except grpc.aio.AioRpcError as exc:
        return Outcome(exc.code(), exc.details() or "")
    return Outcome(grpc.StatusCode.OK, "\n".join(text_format.MessageToString(r) for r in replies))


async def _request(w: World, key: str, a: TenantData, md: Any) -> Any:
    request = ROWS[key].build(a)
    if request == "put-model":  # the tenant's own current model, saved again
        model = (
            await w.scoring.GetScoringModel(scoring_pb.GetScoringModelRequest(), metadata=md)
        ).model
        request = scoring_pb.PutScoringModelRequest(model=model, base_version=a.model_version)
    return request


def _leaked(a: TenantData, outcome: Outcome, request: Any) -> set[str]:
    sent = "\n".join(
        text_format.MessageToString(r)
        for r in (request if isinstance(request, list) else [request])
    )
    return {m for m in a.markers() if m in outcome.text and m not in sent}


def test_every_rpc_has_a_row() -> None:
    pool = descriptor_pool.Default()
    methods = {
        f"{short}/{m.name}"
        for short, full in SERVICES.items()
        for m in pool.FindServiceByName(full).methods
    }
    assert set(STUBS) == set(SERVICES)
    assert methods == set(ROWS), {"missing": methods - set(ROWS), "extra": set(ROWS) - methods}


@pytest.fixture
def routing_settings(monkeypatch, tmp_path) -> None:
    from routing_support import routing_env

    routing_env(monkeypatch, tmp_path)


async def test_tenant_b_gets_nothing_of_tenant_a(settings, routing_settings) -> None:
    async with world(settings) as w:
        a = await w.load(tenant_data(A, "qxa"))
        md_a, md_b, md_c = (await w.key(A), await w.key(B), await w.key(C))
        failures: list[str] = []

        # Reads: B's answer is a refusal or what empty tenant C gets; A's is a real one.
        for key in sorted(k for k in ROWS if _is_read(k)):
            request = await _request(w, key, a, md_a)
            own = await _call(w, key, request, md_a)
            b, c = await _call(w, key, request, md_b), await _call(w, key, request, md_c)
            if own.code != grpc.StatusCode.OK:
                failures.append(f"{key}: A's own call {own.code.name} {own.text[:200]}")
            elif ROWS[key].shows and not any(m in own.text for m in a.markers()):
                failures.append(f"{key}: A's own answer shows none of A's data: {own.text[:300]}")
            if _leaked(a, b, request):
                failures.append(f"{key}: B's answer names {sorted(_leaked(a, b, request))}")
            if b.code not in REFUSED and (b.code != c.code or b.normalized(B) != c.normalized(C)):
                diff = difflib.unified_diff(
                    c.normalized(C).splitlines(), b.normalized(B).splitlines(), lineterm="", n=1
                )
                failures.append(
                    f"{key}: B got {b.code.name}, empty C {c.code.name}: {' | '.join(diff)}"[:1500]
                )

        # Writes with B's key naming A's objects: refused or B's own; A's rows unchanged.
        await w.applied()
        before, volatile = await _settled_rows(w)
        for key in sorted(k for k in ROWS if not _is_read(k)):
            request = await _request(w, key, a, md_b)
            b = await _call(w, key, request, md_b)
            if b.code not in WRITE_REFUSED | {grpc.StatusCode.OK}:
                failures.append(f"{key}: B's write answered {b.code.name} {b.text[:200]}")
            if _leaked(a, b, request):
                failures.append(f"{key}: B's write answer names {sorted(_leaked(a, b, request))}")
        await w.applied()
        after = await w.tenant_rows(A)
        changed = sorted(t for t in before if t not in volatile and before[t] != after[t])
        if changed:
            failures.append(f"A's rows changed by B's writes in {changed} (moving: {volatile})")
        assert not failures, "\n".join(failures)
        # Only A's webhook deliveries move on their own (nothing listens: retried).
        assert volatile <= {'"routing"."deliveries"'}, volatile
        # The digests do see a change: the same stage change made with A's own key.
        await _call(w, "scoring/TransitionStage", ROWS["scoring/TransitionStage"].build(a), md_a)
        await w.applied()
        mine = await w.tenant_rows(A)
        assert '"scoring"."transitions"' in {t for t in after if after[t] != mine[t]}


async def _settled_rows(w: World) -> tuple[dict[str, str], set[str]]:
    """A's rows, and the tables whose A rows change on their own within a few seconds
    (jobs retrying A's webhook deliveries, clocks): those cannot prove anything."""
    first = await w.tenant_rows(A)
    await asyncio.sleep(3)
    second = await w.tenant_rows(A)
    return second, {t for t in first if first[t] != second[t]}


async def test_keys_bad_and_read_only(settings, routing_settings) -> None:
    async with world(settings) as w:
        a = tenant_data(A, "qxa")
        a.owner_ids = ["o-1"]
        a.conversion_ids, a.assignment_ids, a.job_ids = (
            ["c-1"],
            ["00000000-0000-0000-0000-000000000000"],
            ["j-1"],
        )
        md_admin = await w.key(A)
        reader = await w.key(A, "read")
        bad = auth("lf_aaaaaaaaaaaa_" + "x" * 43)
        failures = []
        for key in sorted(ROWS):
            request = await _request(w, key, a, md_admin)
            outcome = await _call(w, key, request, bad)
            if outcome.code != grpc.StatusCode.UNAUTHENTICATED:
                failures.append(f"{key}: bad key answered {outcome.code.name}")
            outcome = await _call(w, key, request, ())
            if outcome.code != grpc.StatusCode.UNAUTHENTICATED:
                failures.append(f"{key}: no key answered {outcome.code.name}")
            if not _is_read(key):
                outcome = await _call(w, key, request, reader)
                if outcome.code != grpc.StatusCode.PERMISSION_DENIED:
                    failures.append(f"{key}: read key on a write answered {outcome.code.name}")
        assert not failures, "\n".join(failures)
        # The read key does read.
        reply = await w.scoring.ListLeads(scoring_pb.ListLeadsRequest(), metadata=reader)
        assert reply.total_count == 0
