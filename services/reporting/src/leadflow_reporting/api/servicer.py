"""The ReportingService gRPC adapter: check the request, call the use case, map the answer.
Reports not built yet answer UNIMPLEMENTED, naming themselves."""

from __future__ import annotations

import time
from dataclasses import dataclass

import grpc

from leadflow.reporting.v1 import report_types_pb2 as rt
from leadflow.reporting.v1 import reporting_service_pb2 as pb
from leadflow.reporting.v1 import reporting_service_pb2_grpc
from leadflow_platform.errors import InvalidArgument, ServiceError
from leadflow_platform.grpc import current_principal
from leadflow_reporting.alerts import Alerts
from leadflow_reporting.api import alert_mapping as am
from leadflow_reporting.api import alert_requests as ar
from leadflow_reporting.api import export_mapping, mapping, requests, weekly_mapping
from leadflow_reporting.api.validation import funnel_query
from leadflow_reporting.business import BusinessReports
from leadflow_reporting.business_answers import BusinessAnswers
from leadflow_reporting.domain.query import FunnelQuery
from leadflow_reporting.export import Exports
from leadflow_reporting.funnels import Funnels
from leadflow_reporting.journeys import Journeys
from leadflow_reporting.paths import Paths
from leadflow_reporting.realtime import RealTime
from leadflow_reporting.retention import Retention
from leadflow_reporting.weekly import TENANT_HEADER, WeeklyReports


class NotBuiltYet(ServiceError):
    code = grpc.StatusCode.UNIMPLEMENTED

    def __init__(self, rpc: str) -> None:
        super().__init__(f"{rpc} is not available in this version of reporting")


def _funnel(request: pb.RunFunnelRequest | pb.ListFunnelDropOffsRequest) -> FunnelQuery:
    if not request.HasField("funnel"):
        raise InvalidArgument.field("funnel", "is required")
    return funnel_query(request.funnel)


@dataclass(frozen=True)
class Reports:
    funnels: Funnels
    real_time: RealTime
    paths: Paths
    journeys: Journeys
    retention: Retention
    business: BusinessReports
    alerts: Alerts


def _now_us() -> int:
    return time.time_ns() // 1000


class ReportingServicer(reporting_service_pb2_grpc.ReportingServiceServicer):
    def __init__(self, reports: Reports) -> None:
        self._reports = reports
        self._funnels = reports.funnels
        self._answers = BusinessAnswers(reports.business, reports.alerts)

    async def RunFunnel(self, request, context):
        query = _funnel(request)
        answer = await self._funnels.run(current_principal().tenant_id, query)
        return mapping.funnel_response(answer)

    async def ListFunnelDropOffs(self, request, context):
        q = requests.drop_offs_query(request)
        page = await self._funnels.drop_offs(
            current_principal().tenant_id,
            q.funnel,
            q.step_index,
            q.breakdown_value,
            q.page_size,
            request.page.page_token,
            q.fingerprint,
        )
        return mapping.drop_offs_response(page)

    async def GetRealTime(self, request, context):
        query = requests.real_time_query(request, _now_us())
        answer = await self._reports.real_time.view(current_principal().tenant_id, query)
        return mapping.real_time_response(answer)

    async def GetPaths(self, request, context):
        query = requests.paths_query(request)
        answer = await self._reports.paths.run(current_principal().tenant_id, query)
        return mapping.paths_response(answer)

    async def GetJourney(self, request, context):
        query = requests.journey_query(request)
        answer = await self._reports.journeys.run(current_principal().tenant_id, query, _now_us())
        return mapping.journey_response(answer)

    async def GetRetention(self, request, context):
        query = requests.retention_query(request)
        table = await self._reports.retention.run(current_principal().tenant_id, query, _now_us())
        return mapping.retention_response(table, request.period or rt.COHORT_PERIOD_WEEK)

    # The business reports: their answers are shared with Export.
    async def GetLeadQuality(self, request, context):
        return await self._answers.lead_quality(current_principal().tenant_id, request)

    async def GetLifecycleFunnel(self, request, context):
        return await self._answers.lifecycle_funnel(current_principal().tenant_id, request)

    async def GetEngagement(self, request, context):
        return await self._answers.engagement(current_principal().tenant_id, request)

    async def GetAttributionSummary(self, request, context):
        return await self._answers.attribution_summary(current_principal().tenant_id, request)

    async def GetSourceInsights(self, request, context):
        return await self._answers.source_insights(current_principal().tenant_id, request)

    async def GetBestPostingHour(self, request, context):
        return await self._answers.best_posting_hour(current_principal().tenant_id, request)

    async def GetAbTest(self, request, context):
        return await self._answers.ab_test(current_principal().tenant_id, request)

    async def GetPortfolioMetrics(self, request, context):
        return await self._answers.portfolio_metrics(current_principal().tenant_id, request)

    async def GetWeeklyReport(self, request, context):
        tenant_id, now_us = current_principal().tenant_id, _now_us()
        query = weekly_mapping.weekly_query(request, now_us)
        # The tenant the key speaks for, so `leadflow report weekly` can refuse a key of
        # another tenant than the one it was asked for.
        await context.send_initial_metadata(((TENANT_HEADER, tenant_id),))
        answer = await WeeklyReports.of(self._reports).run(tenant_id, query, now_us)
        return weekly_mapping.weekly_response(answer)

    async def Export(self, request, context):
        now_us = _now_us()
        plan = export_mapping.plan(request, now_us)
        stream = Exports.of(self._reports).stream(current_principal().tenant_id, plan, now_us)
        async for message in stream:
            yield message

    async def PutAlertConfig(self, request, context):
        draft, expected = ar.put_config(request)
        config = await self._reports.alerts.put_config(
            current_principal().tenant_id, draft, expected, _now_us()
        )
        return pb.PutAlertConfigResponse(config=am.config_to_proto(config))

    async def GetAlertConfig(self, request, context):
        version = ar.get_config(request)
        config = await self._reports.alerts.get_config(current_principal().tenant_id, version)
        return pb.GetAlertConfigResponse(config=am.config_to_proto(config))

    async def ListAlerts(self, request, context):
        query = ar.list_alerts(request)
        found, more = await self._reports.alerts.page(current_principal().tenant_id, query)
        out = pb.ListAlertsResponse(alerts=[am.kpi_alert(a) for a in found])
        if more and found:
            last = found[-1]
            out.page.next_page_token = ar.page_token(
                query.fingerprint, last.raised_at_us, last.alert_id
            )
        return out
