"""The KPIs of one period and brand scope, as alert rules read them, computed by the
reports' own use cases so an alert always agrees with the report a user opens: portfolio
metrics (leads, conversions, conversion rate, revenue, MRR and ARR at the end, active
subjects, routed leads, SLA breaches), engagement (email open and click rates), paths
(sessions started, bounce rate); leads that turned hot from the temperature crossings."""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass, field
from decimal import Decimal

from leadflow_platform.lifecycle import ServiceContext
from leadflow_reporting.api.business_mapping import engagement_response
from leadflow_reporting.business import BusinessReports, window
from leadflow_reporting.db import business_rows
from leadflow_reporting.domain import kpis
from leadflow_reporting.domain.alerts import Amount
from leadflow_reporting.domain.paths import PathsQuery
from leadflow_reporting.paths import Paths

_PORTFOLIO = frozenset(
    {
        kpis.LEADS,
        kpis.CONVERSIONS,
        kpis.CONVERSION_RATE,
        kpis.REVENUE,
        kpis.MRR,
        kpis.ARR,
        kpis.ACTIVE_SUBJECTS,
        kpis.ROUTED_LEADS,
        kpis.SLA_BREACHES,
    }
)
_EMAIL = frozenset({kpis.EMAIL_OPEN_RATE, kpis.EMAIL_CLICK_RATE})
_SESSIONS = frozenset({kpis.SESSIONS, kpis.BOUNCE_RATE})


@dataclass
class PeriodKpis:
    numbers: dict[int, float] = field(default_factory=dict)
    money: dict[int, dict[str, Decimal]] = field(default_factory=dict)

    def value(self, kpi: int, currency: str = "") -> Amount:
        """The KPI's value (money KPIs in `currency`; nothing earned is 0)."""
        if kpi in kpis.MONEY:
            return self.money.get(kpi, {}).get(currency, Decimal(0))
        return self.numbers[kpi]


class KpiValues:
    def __init__(self, context: ServiceContext, business: BusinessReports, paths: Paths) -> None:
        self._context = context
        self._business = business
        self._paths = paths

    async def period(
        self, tenant_id: str, start_us: int, end_us: int, brand_id: str, wanted: Collection[int]
    ) -> PeriodKpis:
        """The `wanted` KPIs over [start, end) for one brand ('' the whole portfolio)."""
        brands = (brand_id,) if brand_id else ()
        out = PeriodKpis()
        wanted = set(wanted)
        if wanted & _PORTFOLIO:
            p = (await self._business.portfolio.run(tenant_id, start_us, end_us, brands)).total
            out.numbers.update(
                {
                    kpis.LEADS: p.new_leads,
                    kpis.CONVERSIONS: p.conversions,
                    kpis.CONVERSION_RATE: p.conversion_rate,
                    kpis.ACTIVE_SUBJECTS: p.active,
                    kpis.ROUTED_LEADS: p.routed_in,
                    kpis.SLA_BREACHES: p.sla_breaches,
                }
            )
            out.money.update({kpis.REVENUE: p.revenue, kpis.MRR: p.mrr, kpis.ARR: p.arr})
        if wanted & _EMAIL:
            answer = await self._business.engagement.run(
                tenant_id, start_us, end_us, brands, False, ()
            )
            email = engagement_response(answer).email
            out.numbers[kpis.EMAIL_OPEN_RATE] = email.open_rate
            out.numbers[kpis.EMAIL_CLICK_RATE] = email.click_rate
        if wanted & _SESSIONS:
            query = PathsQuery(start_us, end_us, None, False, 1, 1, (), (), 1, brands)
            sessions = (await self._paths.run(tenant_id, query)).sessions
            out.numbers[kpis.SESSIONS] = sessions.count
            out.numbers[kpis.BOUNCE_RATE] = sessions.bounce_rate
        if kpis.HOT_LEADS in wanted:
            async with self._context.pool.acquire() as conn:
                out.numbers[kpis.HOT_LEADS] = await business_rows.turned_hot(
                    conn, tenant_id, window(start_us, end_us, brands)
                )
        return out
