"""Exports of funnel drop-offs, the business reports and alerts (see export.py for the
stream): drop-offs and alerts are read a batch at a time, every row whatever the RPC's page
size; a business report is its RPC's answer (business_answers.py), flattened."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable, Sequence
from typing import Any

from leadflow_reporting.alerts import Alerts
from leadflow_reporting.api import alert_mapping, mapping
from leadflow_reporting.api import export_reports as er
from leadflow_reporting.api.export_mapping import TYPE_NAMES, ExportPlan
from leadflow_reporting.business_answers import BusinessAnswers
from leadflow_reporting.domain.export_format import Row
from leadflow_reporting.funnels import Funnels

Batches = AsyncIterator[Iterable[Row]]


class ReportExports:
    def __init__(self, funnels: Funnels, answers: BusinessAnswers, alerts: Alerts) -> None:
        self._funnels = funnels
        self._answers = answers
        self._alerts = alerts

    @classmethod
    def of(cls, reports: Any) -> ReportExports:
        """From the servicer's report use cases."""
        return cls(
            reports.funnels, BusinessAnswers(reports.business, reports.alerts), reports.alerts
        )

    async def source(self, tenant_id: str, plan: ExportPlan) -> tuple[Sequence[str], Batches]:
        """The columns and row batches of an er.KINDS export."""
        if plan.kind == "funnel_drop_offs":
            return er.DROP_OFF_COLUMNS, self._drop_offs(tenant_id, plan.query)
        if plan.kind == "alerts":
            return er.ALERT_COLUMNS, self._listed_alerts(tenant_id, plan.query)
        a, request = self._answers, plan.request
        columns: Sequence[str]
        rows: Iterable[Row]
        if plan.kind == "lead_quality":
            columns = er.LEAD_QUALITY_COLUMNS
            rows = er.lead_quality_rows(await a.lead_quality(tenant_id, request))
        elif plan.kind == "lifecycle_funnel":
            columns = er.LIFECYCLE_COLUMNS
            rows = er.lifecycle_rows(await a.lifecycle_funnel(tenant_id, request))
        elif plan.kind == "engagement":
            columns = er.ENGAGEMENT_COLUMNS
            rows = er.engagement_rows(await a.engagement(tenant_id, request), TYPE_NAMES)
        elif plan.kind == "attribution_summary":
            columns = er.ATTRIBUTION_COLUMNS
            rows = er.attribution_rows(await a.attribution_summary(tenant_id, request))
        elif plan.kind == "source_insights":
            columns = er.INSIGHTS_COLUMNS
            rows = er.insights_rows(await a.source_insights(tenant_id, request))
        elif plan.kind == "best_posting_hour":
            columns = er.POSTING_COLUMNS
            rows = er.posting_rows(await a.best_posting_hour(tenant_id, request))
        elif plan.kind == "ab_test":
            columns = er.AB_COLUMNS
            rows = er.ab_rows(await a.ab_test(tenant_id, request))
        elif plan.kind == "portfolio_metrics":
            columns = er.PORTFOLIO_COLUMNS
            rows = er.portfolio_rows(await a.portfolio_metrics(tenant_id, request))
        else:
            raise AssertionError(f"no export for {plan.kind}")
        return columns, _once(list(rows))

    async def _drop_offs(self, tenant_id: str, q: Any) -> Batches:
        batches = self._funnels.every_drop_off(tenant_id, q.funnel, q.step_index, q.breakdown_value)
        async for page in batches:
            yield list(er.drop_off_rows(q.step_index, mapping.drop_offs_response(page)))

    async def _listed_alerts(self, tenant_id: str, q: Any) -> Batches:
        async for found in self._alerts.every(tenant_id, q):
            yield list(er.alert_rows(alert_mapping.kpi_alert(a) for a in found))


async def _once(rows: Iterable[Row]) -> Batches:
    yield rows
