"""All five services in this process, tenants' data put through their APIs, for the tenant
isolation and row-level security tests (tests/security)."""

from __future__ import annotations

import contextlib
import hashlib
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import asyncpg
from harness import auth, eventually, new_key, running
from ingest_support import event, now
from routing_support import example_config

from leadflow.attribution.v1 import attribution_service_pb2_grpc
from leadflow.common.v1 import lead_pb2, subject_pb2
from leadflow.ingest.v1 import ingest_service_pb2 as ingest_pb
from leadflow.ingest.v1 import ingest_service_pb2_grpc, profile_pb2
from leadflow.reporting.v1 import alerts_pb2, reporting_service_pb2_grpc
from leadflow.reporting.v1 import report_types_pb2 as rt
from leadflow.reporting.v1 import reporting_service_pb2 as reporting_pb
from leadflow.routing.v1 import routing_service_pb2 as routing_pb
from leadflow.routing.v1 import routing_service_pb2_grpc
from leadflow.scoring.v1 import scoring_service_pb2 as scoring_pb
from leadflow.scoring.v1 import scoring_service_pb2_grpc
from leadflow_attribution.app import SPEC as ATTRIBUTION
from leadflow_ingest.app import SPEC as INGEST
from leadflow_platform.embedded import free_port
from leadflow_platform.grpc.client import open_channel
from leadflow_platform.lifecycle import Runtime
from leadflow_platform.settings import Settings
from leadflow_reporting.app import SPEC as REPORTING
from leadflow_routing.api.mapping import config_to_proto
from leadflow_routing.app import SPEC as ROUTING
from leadflow_scoring.app import SPEC as SCORING

SPECS = {"ingest": INGEST, "scoring": SCORING, "attribution": ATTRIBUTION}
SPECS |= {"routing": ROUTING, "reporting": REPORTING}
SCHEMAS = ("tenancy", *SPECS)
STUBS = {
    "ingest": ingest_service_pb2_grpc.IngestServiceStub,
    "scoring": scoring_service_pb2_grpc.ScoringServiceStub,
    "attribution": attribution_service_pb2_grpc.AttributionServiceStub,
    "routing": routing_service_pb2_grpc.RoutingServiceStub,
    "reporting": reporting_service_pb2_grpc.ReportingServiceStub,
}


@dataclass
class TenantData:
    """What one tenant put in, and the ids the services gave it (read back afterwards)."""

    tenant: str
    tag: str  # a token in every id, email and name of this tenant, found by substring
    lead_ids: list[str] = field(default_factory=list)
    anonymous_ids: list[str] = field(default_factory=list)
    emails: list[str] = field(default_factory=list)
    names: list[str] = field(default_factory=list)
    conversion_ids: list[str] = field(default_factory=list)
    assignment_ids: list[str] = field(default_factory=list)
    owner_ids: list[str] = field(default_factory=list)
    enrollment_ids: list[str] = field(default_factory=list)
    job_ids: list[str] = field(default_factory=list)
    alert_ids: list[str] = field(default_factory=list)
    routing_version: int = 0
    model_version: int = 0
    alert_version: int = 0

    @property
    def lead(self) -> str:
        return self.lead_ids[0]

    def markers(self) -> set[str]:
        """Strings none of which may appear in another tenant's answer."""
        found = {self.tag, *self.lead_ids, *self.anonymous_ids, *self.emails, *self.names}
        found |= {*self.conversion_ids, *self.assignment_ids, *self.enrollment_ids}
        return found | {*self.job_ids, *self.alert_ids}


def tenant_data(tenant: str, tag: str) -> TenantData:
    return TenantData(
        tenant,
        tag,
        lead_ids=[f"lead-{tag}-1", f"lead-{tag}-2"],
        anonymous_ids=[f"anon-{tag}-1"],
        emails=[f"ada.{tag}@{tag}.example.com", f"bo.{tag}@{tag}.example.com"],
        names=[f"Ada{tag}", f"Lovelace{tag}", f"Bo{tag}"],
    )


class World:
    """The five services of one database and bus namespace, and an admin key per tenant."""

    def __init__(self, settings: Settings, runtimes: dict[str, Runtime], stubs: dict[str, Any]):
        self.settings = settings
        self.runtimes = runtimes
        self.stubs = stubs
        self.keys: dict[str, str] = {}

    def __getattr__(self, name: str) -> Any:
        if name in STUBS:
            return self.stubs[name]
        raise AttributeError(name)

    async def key(self, tenant: str, *scopes: str) -> tuple[tuple[str, str], ...]:
        token = await new_key(self.settings.database_url, tenant, *(scopes or ("admin",)))
        if not scopes:
            self.keys.setdefault(tenant, token)
        return auth(token)

    async def load(self, data: TenantData) -> TenantData:
        """Everything a tenant does: a routing config, a scoring model, an alert config,
        identified leads with consent, a visitor aliased to a lead, touchpoints, a
        purchase, a stage change and a rescoring job; then wait until every service has it."""
        md = await self.key(data.tenant)
        t = data.tag
        hook = f"http://127.0.0.1:{free_port()}/hook-{t}"  # nothing listens: retried, fine
        put = await self.routing.PutRoutingConfig(
            routing_pb.PutRoutingConfigRequest(config=config_to_proto(example_config(hook))),
            metadata=md,
        )
        data.routing_version = put.version
        model = (
            await self.scoring.GetScoringModel(scoring_pb.GetScoringModelRequest(), metadata=md)
        ).model
        saved = await self.scoring.PutScoringModel(
            scoring_pb.PutScoringModelRequest(model=model), metadata=md
        )
        data.model_version = saved.model.version
        alert = await self.reporting.PutAlertConfig(
            reporting_pb.PutAlertConfigRequest(
                config=alerts_pb2.AlertConfig(
                    rules=[
                        alerts_pb2.KpiAlertRule(
                            rule_id=f"leads-{t}",
                            kpi=rt.KPI_LEADS,
                            threshold=rt.KpiValue(number=1e9),
                        )
                    ]
                )
            ),
            metadata=md,
        )
        data.alert_version = alert.config.version
        granted = profile_pb2.ConsentDecision(status=profile_pb2.CONSENT_STATUS_GRANTED, source="t")
        people = [(data.lead_ids[0], data.emails[0], data.names[0], data.names[1])]
        people.append((data.lead_ids[1], data.emails[1], data.names[2], data.names[1]))
        for lead_id, email, first, last in people:
            await self.ingest.SetConsent(
                ingest_pb.SetConsentRequest(
                    subject=subject_pb2.SubjectRef(lead_id=lead_id),
                    tracking=granted,
                    email=granted,
                    portfolio_sharing=granted,
                ),
                metadata=md,
            )
            profile = profile_pb2.LeadProfile(
                email=email,
                first_name=first,
                last_name=last,
                phone="+15555550100",
                company=f"Co{t}",
                customer_type="enterprise",
                home_brand_id="modumind",
                lead_source="referral",
            )
            await self.ingest.Identify(
                ingest_pb.IdentifyRequest(lead_id=lead_id, profile=profile), metadata=md
            )
        at = now() - timedelta(hours=2)
        campaign = {"channel": "email", "source": f"news-{t}", "medium": "email", "campaign": t}
        events = [
            event(f"ev-{t}-visit", anonymous_id=data.anonymous_ids[0], occurred_at=at,
                  marketing={**campaign, "channel": "paid_search", "source": "google"},
                  properties={"path": f"/pricing-{t}"}),
            event(f"ev-{t}-1", lead_id=data.lead, occurred_at=at + timedelta(minutes=5),
                  marketing=campaign, properties={"path": f"/home-{t}"}),
            event(f"ev-{t}-2", type="form_submitted", lead_id=data.lead,
                  occurred_at=at + timedelta(minutes=10), properties={"form": f"demo-{t}"}),
            event(f"ev-{t}-3", type="email_clicked", lead_id=data.lead_ids[1],
                  occurred_at=at + timedelta(minutes=12), marketing=campaign),
            event(f"ev-{t}-buy", type="purchase", lead_id=data.lead,
                  occurred_at=at + timedelta(minutes=30), value=(1200, 0, "USD"),
                  properties={"sku": f"plan-{t}"}),
        ]  # fmt: skip
        reply = await self.ingest.TrackBatch(
            ingest_pb.TrackBatchRequest(events=events), metadata=md
        )
        assert reply.rejected == 0, [r.violations for r in reply.results]
        await self.ingest.Alias(
            ingest_pb.AliasRequest(anonymous_id=data.anonymous_ids[0], lead_id=data.lead),
            metadata=md,
        )
        await self.applied()

        async def scored() -> bool:
            try:
                await self.scoring.GetScore(
                    scoring_pb.GetScoreRequest(lead_id=data.lead), metadata=md
                )
            except Exception:
                return False
            return True

        await eventually(scored, timeout=60, interval=0.2)
        await self.scoring.TransitionStage(
            scoring_pb.TransitionStageRequest(
                lead_id=data.lead_ids[1], to_stage=lead_pb2.LIFECYCLE_STAGE_OPPORTUNITY,
                reason=f"call-{t}",
            ),
            metadata=md,
        )  # fmt: skip
        job = await self.scoring.ScoreLeads(
            scoring_pb.ScoreLeadsRequest(all_leads=True), metadata=md
        )
        data.job_ids.append(job.job.job_id)
        await self.applied()
        await self._read_back(data)
        return data

    async def _read_back(self, data: TenantData) -> None:
        async with self.admin() as conn:
            one = "SELECT {0} FROM {1} WHERE tenant_id = $1 ORDER BY 1"

            async def ids(column: str, table: str) -> list[str]:
                return [r[0] for r in await conn.fetch(one.format(column, table), data.tenant)]

            data.conversion_ids = await ids("conversion_id", "attribution.conversions")
            data.assignment_ids = await ids("assignment_id::text", "routing.assignments")
            data.owner_ids = await ids("owner_id", "routing.assignments")
            data.enrollment_ids = await ids("enrollment_id::text", "routing.enrollments")
            data.alert_ids = await ids("alert_id::text", "reporting.alerts")

    @contextlib.asynccontextmanager
    async def admin(self) -> AsyncIterator[asyncpg.Connection]:
        """A connection as the database's owner (what the services' migrations ran as)."""
        conn = await asyncpg.connect(self.settings.database_url)
        try:
            yield conn
        finally:
            await conn.close()

    async def applied(self) -> None:
        """Every outbox relayed and every durable consumer of the namespace idle, three
        times in a row (each service's events feed the next)."""
        bus = self.runtimes["ingest"].bus

        async def caught_up() -> bool:
            for runtime in self.runtimes.values():
                if await runtime.pool.fetchval(
                    "SELECT count(*) FROM outbox WHERE published_at IS NULL"
                ):
                    return False
            for stream in await bus.js.streams_info():
                if not stream.config.name.startswith(bus.stream_name("")):
                    continue
                for consumer in await bus.js.consumers_info(stream.config.name):
                    if consumer.num_pending or consumer.num_ack_pending:
                        return False
            return True

        for _ in range(3):
            await eventually(caught_up, timeout=90, interval=0.1)

    async def tenant_rows(self, tenant: str) -> dict[str, str]:
        """A digest of every row of `tenant` in every tenant table (as the owner)."""
        async with self.admin() as conn:
            tables = await tenant_tables(conn)
            digests = {}
            for table in tables:
                rows = await conn.fetch(
                    f"SELECT t::text AS row FROM {table} t WHERE tenant_id = $1 ORDER BY 1", tenant
                )
                text = "\n".join(r["row"] for r in rows)
                digests[table] = hashlib.sha256(text.encode()).hexdigest()
            return digests


async def tenant_tables(conn: asyncpg.Connection) -> list[str]:
    """Every table of a leadflow schema with a tenant_id column, from information_schema,
    so a table added later is covered without touching the tests."""
    rows = await conn.fetch(
        "SELECT c.table_schema, c.table_name FROM information_schema.columns c"
        " JOIN information_schema.tables t USING (table_schema, table_name)"
        " WHERE c.column_name = 'tenant_id' AND t.table_type = 'BASE TABLE'"
        " AND c.table_schema = ANY($1::text[]) ORDER BY 1, 2",
        list(SCHEMAS),
    )
    return [f'"{r["table_schema"]}"."{r["table_name"]}"' for r in rows]


@contextlib.asynccontextmanager
async def world(settings: Settings) -> AsyncIterator[World]:
    async with contextlib.AsyncExitStack() as stack:
        runtimes = {}
        stubs = {}
        for name, spec in SPECS.items():
            runtimes[name] = await stack.enter_async_context(running(spec, settings))
            channel = await stack.enter_async_context(
                open_channel(f"127.0.0.1:{runtimes[name].port}")
            )
            stubs[name] = STUBS[name](channel)
        yield World(settings, runtimes, stubs)
