"""The business reports' answers, request to response, shared by their RPCs and by Export so
that an export always holds what the report's RPC answers: the request checked
(api/business_requests.py), the use case run, the answer mapped (api/business_mapping.py)."""

from __future__ import annotations

from dataclasses import dataclass

from leadflow.reporting.v1 import reporting_service_pb2 as pb
from leadflow_reporting.alerts import Alerts
from leadflow_reporting.api import alert_mapping as am
from leadflow_reporting.api import business_mapping as bm
from leadflow_reporting.api import business_requests as br
from leadflow_reporting.business import BusinessReports


@dataclass(frozen=True)
class BusinessAnswers:
    business: BusinessReports
    alerts: Alerts

    async def lead_quality(
        self, tenant_id: str, request: pb.GetLeadQualityRequest
    ) -> pb.GetLeadQualityResponse:
        identified, brand_ids = br.lead_quality(request)
        answer = await self.business.lead_quality.run(
            tenant_id, identified, brand_ids, request.by_brand
        )
        return bm.lead_quality_response(answer)

    async def lifecycle_funnel(
        self, tenant_id: str, request: pb.GetLifecycleFunnelRequest
    ) -> pb.GetLifecycleFunnelResponse:
        start, end, brand_ids = br.ranged(request)
        answer = await self.business.lifecycle.run(tenant_id, start, end, brand_ids)
        return bm.lifecycle_response(answer)

    async def engagement(
        self, tenant_id: str, request: pb.GetEngagementRequest
    ) -> pb.GetEngagementResponse:
        start, end, brand_ids, excluded = br.engagement(request)
        answer = await self.business.engagement.run(
            tenant_id, start, end, brand_ids, request.include_machine_events, excluded
        )
        return bm.engagement_response(answer)

    async def attribution_summary(
        self, tenant_id: str, request: pb.GetAttributionSummaryRequest
    ) -> pb.GetAttributionSummaryResponse:
        start, end, brand_ids, models, column, limit, types = br.attribution_summary(request)
        answer = await self.business.attribution.run(
            tenant_id, start, end, brand_ids, models, column, limit, types
        )
        return bm.attribution_response(answer)

    async def source_insights(
        self, tenant_id: str, request: pb.GetSourceInsightsRequest
    ) -> pb.GetSourceInsightsResponse:
        answer = await self.business.insights.run(tenant_id, br.source_insights(request))
        return bm.insights_response(answer)

    async def best_posting_hour(
        self, tenant_id: str, request: pb.GetBestPostingHourRequest
    ) -> pb.GetBestPostingHourResponse:
        start, end, brand_ids, selector, path, minimum, tz, by = br.best_posting_hour(request)
        answer = await self.business.posting.run(
            tenant_id, start, end, brand_ids, selector, path, minimum, tz, by
        )
        return bm.posting_response(answer)

    async def ab_test(self, tenant_id: str, request: pb.GetAbTestRequest) -> pb.GetAbTestResponse:
        query = br.ab_test(request)
        answer = await self.business.experiments.run(tenant_id, query)
        return bm.ab_response(answer, query.experiment, query.confidence, query.min_sample)

    async def portfolio_metrics(
        self, tenant_id: str, request: pb.GetPortfolioMetricsRequest
    ) -> pb.GetPortfolioMetricsResponse:
        start, end, brand_ids = br.portfolio(request)
        portfolio = self.business.portfolio
        now = await portfolio.run(tenant_id, start, end, brand_ids)
        before = previous = None
        if request.compare_previous:
            previous = (2 * start - end, start)
            before = await portfolio.run(tenant_id, *previous, brand_ids)
        out = bm.portfolio_response(now, before, previous)
        alerts = await self.alerts.in_range(tenant_id, start, end, brand_ids)
        out.alerts.extend(am.kpi_alert(a) for a in alerts)
        return out
