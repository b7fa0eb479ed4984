"""KPI alerts: versioned configurations, the evaluation of closed periods, and the lists.

Evaluation (the periodic job; `evaluate` takes the time, so tests move it): for each tenant
with a configuration, each period kind (day, ISO week, month in the configuration's time
zone) has a watermark: every period ending at or before it was evaluated. The periods that
ended after it (initially: after the current version was saved), at least `settle` ago, are
evaluated oldest first, at most the CATCH_UP most recent ones (older ones are skipped after
an outage). Each enabled rule of the kind compares its KPI with its threshold; a breach
becomes an alert with the previous period's value. A period's alerts, the outbox events of
those actually inserted and the watermark's move are one transaction, which holds the
watermark row (so a replica evaluating the same period at once stores nothing) and a share
lock on the configuration head (so no alert of a replaced version is stored). Alerts are
unique per (tenant, alert id), the id derived from rule, version and period.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import replace
from zoneinfo import ZoneInfo

from leadflow.reporting.v1 import alerts_pb2
from leadflow_platform.errors import FailedPrecondition, NotFound
from leadflow_platform.lifecycle import ServiceContext
from leadflow_platform.logging import get_logger
from leadflow_platform.nats import add_to_outbox
from leadflow_reporting.api.alert_mapping import alert_raised, config_from_proto, config_to_proto
from leadflow_reporting.api.alert_requests import AlertsQuery
from leadflow_reporting.business import BusinessReports
from leadflow_reporting.db import alerts as db
from leadflow_reporting.domain.alerts import (
    PERIOD_KINDS,
    Alert,
    AlertConfig,
    alert,
    breached,
    closed_periods,
    previous_period,
)
from leadflow_reporting.kpi_values import KpiValues, PeriodKpis
from leadflow_reporting.paths import Paths

log = get_logger(__name__)

# Closed periods of a kind evaluated at most in one catch-up (the most recent ones).
CATCH_UP = 31
# Rows an export reads at a time.
EXPORT_BATCH = 1_000


class Alerts:
    def __init__(
        self, context: ServiceContext, values: KpiValues, *, settle_us: int = 300_000_000
    ) -> None:
        self._context = context
        self._values = values
        self._settle_us = settle_us

    @classmethod
    def of(
        cls,
        context: ServiceContext,
        business: BusinessReports | None = None,
        paths: Paths | None = None,
        *,
        settle_us: int = 300_000_000,
    ) -> Alerts:
        """With KPIs read by the given report use cases (new ones on the context if not)."""
        values = KpiValues(
            context, business or BusinessReports.of(context), paths or Paths(context)
        )
        return cls(context, values, settle_us=settle_us)

    # Configuration ------------------------------------------------------------------------

    async def put_config(
        self, tenant_id: str, draft: AlertConfig, expected_version: int | None, now_us: int
    ) -> AlertConfig:
        async with self._context.pool.acquire() as conn, conn.transaction():
            current = await db.lock_head(conn, tenant_id)
            if expected_version is not None and expected_version != current:
                raise FailedPrecondition(
                    f"expected_version is {expected_version} but the current version is {current}"
                )
            config = replace(draft, version=current + 1, saved_at_us=now_us)
            payload = config_to_proto(config).SerializeToString()
            await db.insert_config(conn, tenant_id, config.version, payload, db.at(now_us))
        log.info(
            "alert_config_saved",
            tenant_id=tenant_id,
            version=config.version,
            rules=len(config.rules),
        )
        return config

    async def get_config(self, tenant_id: str, version: int | None) -> AlertConfig:
        """The current (or a given) version; version 0 without rules when none was saved."""
        async with self._context.pool.acquire() as conn:
            wanted = await db.current_version(conn, tenant_id) if version is None else version
            payload = await db.config_payload(conn, tenant_id, wanted) if wanted else None
        if payload is None:
            if version is None:
                return AlertConfig(0, (), "UTC")
            raise NotFound(f"alert configuration version {version} does not exist")
        return config_from_proto(alerts_pb2.AlertConfig.FromString(payload))

    # Lists --------------------------------------------------------------------------------

    async def page(self, tenant_id: str, q: AlertsQuery) -> tuple[list[Alert], bool]:
        """One page and whether more follow."""
        async with self._context.pool.acquire() as conn:
            found = await db.list_alerts(
                conn,
                tenant_id,
                start_us=q.start_us,
                end_us=q.end_us,
                kpis=q.kpis,
                brand_ids=q.brand_ids,
                after=q.after,
                limit=q.page_size + 1,
            )
        return found[: q.page_size], len(found) > q.page_size

    async def every(self, tenant_id: str, q: AlertsQuery) -> AsyncIterator[list[Alert]]:
        """Every alert the query selects, newest first, in batches (exports)."""
        batch = replace(q, page_size=EXPORT_BATCH, after=None)
        while True:
            found, more = await self.page(tenant_id, batch)
            if found:
                yield found
            if not more:
                return
            batch = replace(batch, after=(found[-1].raised_at_us, found[-1].alert_id))

    async def in_range(
        self, tenant_id: str, start_us: int, end_us: int, brand_ids: tuple[str, ...] = ()
    ) -> list[Alert]:
        async with self._context.pool.acquire() as conn:
            return await db.alerts_in_range(conn, tenant_id, start_us, end_us, brand_ids)

    # Evaluation ---------------------------------------------------------------------------

    async def evaluate(self, now_us: int) -> list[Alert]:
        """Evaluate every tenant's rules over the periods closed by `now_us`; the alerts
        this call stored."""
        async with self._context.pool.acquire() as conn:
            tenants = await db.configured_tenants(conn)
        raised: list[Alert] = []
        for tenant_id in tenants:
            try:
                raised += await self.evaluate_tenant(tenant_id, now_us)
            except Exception:
                # One tenant's failure must not hold back the others' alerts.
                log.exception("alert_evaluation_failed", tenant_id=tenant_id)
        return raised

    async def evaluate_tenant(self, tenant_id: str, now_us: int) -> list[Alert]:
        async with self._context.pool.acquire() as conn:
            version = await db.current_version(conn, tenant_id)
            payload = await db.config_payload(conn, tenant_id, version) if version else None
            marks = await db.watermarks(conn, tenant_id)
        if payload is None:
            return []
        config = config_from_proto(alerts_pb2.AlertConfig.FromString(payload))
        zone = ZoneInfo(config.time_zone)
        enabled = [r for r in config.rules if not r.disabled]
        wanted = {r.kpi for r in enabled}
        computed: dict[tuple[int, int, str], PeriodKpis] = {}

        async def kpis_of(period: tuple[int, int], brand_id: str) -> PeriodKpis:
            key = (*period, brand_id)
            if key not in computed:
                computed[key] = await self._values.period(tenant_id, *period, brand_id, wanted)
            return computed[key]

        raised: list[Alert] = []
        for kind in PERIOD_KINDS:
            since = marks.get(kind, config.saved_at_us)
            rules = [r for r in enabled if r.period == kind]
            for period in closed_periods(since, now_us - self._settle_us, kind, zone, CATCH_UP):
                found = []
                for rule in rules:
                    value = (await kpis_of(period, rule.brand_id)).value(rule.kpi, rule.currency)
                    if not breached(value, rule.threshold, rule.direction):
                        continue
                    before = previous_period(period[0], kind, zone)
                    previous = (await kpis_of(before, rule.brand_id)).value(rule.kpi, rule.currency)
                    found.append(alert(tenant_id, config, rule, period, value, previous, now_us))
                stored = await self._store(tenant_id, config.version, kind, since, period, found)
                if stored is None:
                    return raised  # a new version was saved: the next run uses it
                raised += stored
        return raised

    async def _store(
        self,
        tenant_id: str,
        version: int,
        kind: int,
        since_us: int,
        period: tuple[int, int],
        found: list[Alert],
    ) -> list[Alert] | None:
        """Store a period's alerts and publish those inserted; [] when another replica
        evaluated the period, None when the configuration changed meanwhile."""
        async with self._context.pool.acquire() as conn, conn.transaction():
            if await db.current_version(conn, tenant_id, share=True) != version:
                return None
            if not await db.claim_period(conn, tenant_id, kind, since_us, period[1]):
                return []
            inserted = await db.insert_alerts(conn, tenant_id, found)
            await add_to_outbox(conn, *(alert_raised(tenant_id, a) for a in inserted))
        for a in inserted:
            log.info(
                "alert_raised",
                tenant_id=tenant_id,
                alert_id=a.alert_id,
                rule_id=a.rule_id,
                kpi=a.kpi,
                brand_id=a.brand_id,
            )
        return inserted
