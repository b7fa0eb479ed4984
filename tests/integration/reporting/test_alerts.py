"""KPI alerts over gRPC and NATS: configuration validation, versions and optimistic
concurrency; alerts raised for a closed day from events pushed through ingest (below and
above thresholds, brand-scoped and portfolio rules, money thresholds), published on NATS
exactly once while three evaluators race; a new version evaluating only later periods;
ListAlerts filters and pages, portfolio metrics' alerts, the alerts export, and pruning."""

from __future__ import annotations

import asyncio
import csv
import io
from datetime import UTC, datetime, timedelta

import grpc
import pytest
from harness import auth, eventually, new_key, running
from ingest_support import event
from reporting_support import TENANT, MovableClock, published_alerts, suite

from leadflow.common.v1 import time_range_pb2
from leadflow.reporting.v1 import alerts_pb2
from leadflow.reporting.v1 import report_types_pb2 as rt
from leadflow.reporting.v1 import reporting_service_pb2 as pb
from leadflow_reporting.alerts import Alerts
from leadflow_reporting.app import spec
from leadflow_reporting.config import ReportingSettings
from leadflow_reporting.pruning import delete_expired

pytestmark = pytest.mark.integration

SETTLE = timedelta(minutes=5)  # the default LEADFLOW_REPORTING_ALERT_SETTLE_SECONDS
MONEY = (rt.KPI_REVENUE, rt.KPI_MRR, rt.KPI_ARR)


def span(start: datetime, end: datetime) -> time_range_pb2.TimeRange:
    r = time_range_pb2.TimeRange()
    r.start_time.FromDatetime(start)
    r.end_time.FromDatetime(end)
    return r


def number(value: float) -> rt.KpiValue:
    return rt.KpiValue(number=value)


def usd(units: int) -> rt.KpiValue:
    return rt.KpiValue(money={"currency_code": "USD", "units": units})


def rule(rule_id: str, kpi: int, threshold: rt.KpiValue, **fields) -> alerts_pb2.KpiAlertRule:
    return alerts_pb2.KpiAlertRule(rule_id=rule_id, kpi=kpi, threshold=threshold, **fields)


async def test_config_validation_versions_and_optimistic_concurrency(settings) -> None:
    async with suite(settings) as s:
        md, r = s.metadata, s.reporting
        empty = await r.GetAlertConfig(pb.GetAlertConfigRequest(), metadata=md)
        assert empty.config.version == 0 and not empty.config.rules

        bad = pb.PutAlertConfigRequest(
            config=alerts_pb2.AlertConfig(
                rules=[
                    rule("ok", rt.KPI_LEADS, number(5)),
                    rule("UPPER", rt.KPI_LEADS, number(5)),
                    rule("rev", rt.KPI_REVENUE, number(5)),
                    rule("rate", rt.KPI_BOUNCE_RATE, number(2)),
                    rule("ok", rt.KPI_SESSIONS, number(1)),
                    alerts_pb2.KpiAlertRule(rule_id="no-kpi", threshold=number(1)),
                ],
                time_zone="Nowhere/City",
            )
        )
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await r.PutAlertConfig(bad, metadata=md)
        assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        details = err.value.details() or ""
        for field in (
            "config.rules[1].rule_id",
            "config.rules[2].threshold",
            "config.rules[3].threshold.number",
            "config.rules[4].rule_id",
            "config.rules[5].kpi",
            "config.time_zone",
        ):
            assert field in details, (field, details)
        # Nothing was saved.
        still = await r.GetAlertConfig(pb.GetAlertConfigRequest(), metadata=md)
        assert still.config.version == 0

        first = alerts_pb2.AlertConfig(
            rules=[rule("low-leads", rt.KPI_LEADS, number(5), brand_id="modumind")],
            time_zone="Europe/Paris",
        )
        saved = await r.PutAlertConfig(
            pb.PutAlertConfigRequest(config=first, expected_version=0), metadata=md
        )
        assert saved.config.version == 1 and saved.config.updated_at.seconds > 0
        (got,) = saved.config.rules
        assert got.period == alerts_pb2.ALERT_PERIOD_DAY
        assert got.direction == alerts_pb2.THRESHOLD_DIRECTION_BELOW
        assert saved.config.time_zone == "Europe/Paris"

        # Optimistic concurrency: a writer that read version 0 is refused.
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await r.PutAlertConfig(
                pb.PutAlertConfigRequest(config=first, expected_version=0), metadata=md
            )
        assert err.value.code() == grpc.StatusCode.FAILED_PRECONDITION
        second = alerts_pb2.AlertConfig(rules=[rule("rev", rt.KPI_REVENUE, usd(100))])
        saved = await r.PutAlertConfig(
            pb.PutAlertConfigRequest(config=second, expected_version=1), metadata=md
        )
        assert saved.config.version == 2
        # Without expected_version, whatever the current version.
        third = await r.PutAlertConfig(pb.PutAlertConfigRequest(config=second), metadata=md)
        assert third.config.version == 3

        current = await r.GetAlertConfig(pb.GetAlertConfigRequest(), metadata=md)
        assert current.config == third.config
        old = await r.GetAlertConfig(pb.GetAlertConfigRequest(version=1), metadata=md)
        assert [x.rule_id for x in old.config.rules] == ["low-leads"]
        assert old.config.rules[0].threshold.number == 5
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await r.GetAlertConfig(pb.GetAlertConfigRequest(version=9), metadata=md)
        assert err.value.code() == grpc.StatusCode.NOT_FOUND

        # Changing alerts is an admin's job.
        reader = auth(await new_key(settings.database_url, TENANT, "read"))
        await r.GetAlertConfig(pb.GetAlertConfigRequest(), metadata=reader)
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await r.PutAlertConfig(pb.PutAlertConfigRequest(config=second), metadata=reader)
        assert err.value.code() == grpc.StatusCode.PERMISSION_DENIED


def _events(day: datetime, saved: datetime) -> list:
    """Yesterday: 14 stacksense purchases of 10 USD. The day of the save (before it):
    3 stacksense purchases of 10 USD, 5 modumind signups, 2 epicquest page views."""
    yesterday = day - timedelta(hours=12)
    today = day + (saved - day) / 2
    out = [
        event(
            f"y{i}",
            type="purchase",
            lead_id=f"y-{i}",
            brand_id="stacksense",
            occurred_at=yesterday,
            value=(10, 0, "USD"),
        )
        for i in range(14)
    ]
    out += [
        event(
            f"s{i}",
            type="purchase",
            lead_id=f"s-{i}",
            brand_id="stacksense",
            occurred_at=today,
            value=(10, 0, "USD"),
        )
        for i in range(3)
    ]
    out += [
        event(f"m{i}", type="signup", lead_id=f"m-{i}", brand_id="modumind", occurred_at=today)
        for i in range(5)
    ]
    out += [
        event(f"e{i}", lead_id=f"e-{i}", brand_id="epicquest", occurred_at=today) for i in range(2)
    ]
    return out


async def _list(r, md, **fields) -> list[alerts_pb2.KpiAlert]:
    reply = await r.ListAlerts(pb.ListAlertsRequest(**fields), metadata=md)
    return list(reply.alerts)


async def test_alerts_raised_once_listed_exported_and_pruned(settings, monkeypatch) -> None:
    clock = MovableClock()
    async with suite(settings) as s:
        md, r = s.metadata, s.reporting
        config = alerts_pb2.AlertConfig(
            rules=[
                rule("stack-conv", rt.KPI_CONVERSIONS, number(10), brand_id="stacksense"),
                rule("modu-conv", rt.KPI_CONVERSIONS, number(2), brand_id="modumind"),
                rule(
                    "busy",
                    rt.KPI_ACTIVE_SUBJECTS,
                    number(5),
                    direction=alerts_pb2.THRESHOLD_DIRECTION_ABOVE,
                ),
                rule("stack-rev", rt.KPI_REVENUE, usd(100), brand_id="stacksense"),
                rule("off", rt.KPI_LEADS, number(1000), disabled=True),
                # Every other KPI, so that each way of computing one runs (never below 0).
                *(
                    rule(f"all-{k}", k, usd(0) if k in MONEY else number(0), brand_id="nobody")
                    for k in rt.Kpi.values()
                    if k
                ),
                rule(
                    "weekly",
                    rt.KPI_CONVERSIONS,
                    number(1000),
                    brand_id="stacksense",
                    period=alerts_pb2.ALERT_PERIOD_WEEK,
                ),
            ]
        )
        saved = await r.PutAlertConfig(pb.PutAlertConfigRequest(config=config), metadata=md)
        saved_at = saved.config.updated_at.ToDatetime(UTC)
        day = saved_at.replace(hour=0, minute=0, second=0, microsecond=0)
        next_day = day + timedelta(days=1)
        await s.track(_events(day, saved_at))
        await s.applied()

        # A second replica whose alert job runs every 0.2 s on the movable clock.
        monkeypatch.setenv("LEADFLOW_REPORTING_ALERT_INTERVAL_SECONDS", "0.2")
        async with running(spec(clock), settings) as replica:
            # Close the day: the replica's job and two direct evaluations race.
            now = next_day + SETTLE + timedelta(seconds=1)
            clock.now = now
            now_us = int(now.timestamp() * 1_000_000)
            stored = await asyncio.gather(
                Alerts.of(s.reporting_runtime).evaluate(now_us),
                Alerts.of(replica).evaluate(now_us),
            )
            weekly = day.weekday() == 6  # a Sunday closes its ISO week too
            expected = {"stack-conv", "busy", "stack-rev"} | ({"weekly"} if weekly else set())

            async def all_stored() -> bool:
                return await s.pool.fetchval("SELECT count(*) FROM alerts") == len(expected)

            await eventually(all_stored, timeout=20)
            assert sum(len(x) for x in stored) <= len(expected)

            async def all_published() -> list:
                found = await published_alerts(settings)
                return found if len(found) >= len(expected) else []

            await eventually(all_published, timeout=20)
            await asyncio.sleep(1.0)  # three evaluators, two relays: nothing more comes
            events = await published_alerts(settings)
            assert len(events) == len(expected)
            assert await s.pool.fetchval("SELECT count(*) FROM outbox") == len(expected)

            alerts = await _list(r, md)
            assert {a.rule_id for a in alerts} == expected
            assert {m for m, _ in events} == {a.alert_id for a in alerts}
            for msg_id, e in events:
                assert e.metadata.event_id == msg_id == e.alert.alert_id
                assert e.metadata.producer == "reporting" and e.metadata.tenant_id == TENANT
            by_rule = {a.rule_id: a for a in alerts}
            conv = by_rule["stack-conv"]
            assert conv.message == (
                f"Stacksense conversions were 3 on {day:%Y-%m-%d}, below the threshold of 10"
                " (previous day: 14)"
            )
            assert (conv.value.number, conv.previous_value.number) == (3, 14)
            assert conv.kpi_name == "conversions" and conv.brand_id == "stacksense"
            assert conv.period.start_time.ToDatetime(UTC) == day
            assert conv.period.end_time.ToDatetime(UTC) == next_day
            assert conv.config_version == 1
            assert conv.raised_at.ToDatetime(UTC) == now
            busy = by_rule["busy"]
            assert busy.value.number == 10 and busy.brand_id == ""
            assert busy.direction == alerts_pb2.THRESHOLD_DIRECTION_ABOVE
            assert "above the threshold of 5" in busy.message
            rev = by_rule["stack-rev"]
            assert (rev.value.money.currency_code, rev.value.money.units) == ("USD", 30)
            assert rev.previous_value.money.units == 140
            assert rev.message.endswith("(previous day: 140.00 USD)")

            # Evaluated periods are never evaluated again.
            assert await Alerts.of(replica).evaluate(now_us) == []

        # A new version applies to the periods that close after the last evaluated one:
        # the next day (no events) alerts under version 2, the first day is not redone.
        v2 = alerts_pb2.AlertConfig(
            rules=[rule("stack-conv", rt.KPI_CONVERSIONS, number(10), brand_id="stacksense")]
        )
        await r.PutAlertConfig(pb.PutAlertConfigRequest(config=v2), metadata=md)
        later = next_day + timedelta(days=1) + SETTLE
        raised = await Alerts.of(s.reporting_runtime).evaluate(int(later.timestamp() * 1e6))
        assert [(a.rule_id, a.config_version, a.previous) for a in raised] == [
            ("stack-conv", 2, 3.0)
        ]
        assert raised[0].message.startswith(f"Stacksense conversions were 0 on {next_day:%Y-%m-%d}")

        # ListAlerts: filters and pages, newest first.
        alerts = await _list(r, md)
        assert len(alerts) == len(expected) + 1
        keys = [(a.raised_at.ToMicroseconds(), a.alert_id) for a in alerts]
        assert keys == sorted(keys, reverse=True)
        assert alerts[0].config_version == 2
        conversions = await _list(r, md, kpis=[rt.KPI_CONVERSIONS])
        assert {a.rule_id for a in conversions} == {"stack-conv"} | (
            {"weekly"} if weekly else set()
        )
        portfolio = await _list(r, md, brand_ids=[""])
        assert [a.rule_id for a in portfolio] == ["busy"]
        revenue_or_busy = await _list(r, md, kpis=[rt.KPI_REVENUE, rt.KPI_ACTIVE_SUBJECTS])
        assert {a.rule_id for a in revenue_or_busy} == {"stack-rev", "busy"}
        first_day = await _list(r, md, range=span(day + timedelta(hours=23), next_day))
        assert {a.rule_id for a in first_day} == expected
        assert await _list(r, md, range=span(day - timedelta(days=5), day)) == []
        paged: list[alerts_pb2.KpiAlert] = []
        token = ""
        while True:
            request = pb.ListAlertsRequest(page={"page_size": 2, "page_token": token})
            reply = await r.ListAlerts(request, metadata=md)
            paged += reply.alerts
            token = reply.page.next_page_token
            if not token:
                break
        assert [a.alert_id for a in paged] == [a.alert_id for a in alerts]
        other = pb.ListAlertsRequest(kpis=[rt.KPI_LEADS], page={"page_token": token or "e30"})
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await r.ListAlerts(other, metadata=md)
        assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert "page.page_token" in (err.value.details() or "")
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await r.ListAlerts(pb.ListAlertsRequest(kpis=[99]), metadata=md)
        assert "kpis[0]" in (err.value.details() or "")

        # Portfolio metrics carry the alerts of their range (of the listed brands).
        metrics = await r.GetPortfolioMetrics(
            pb.GetPortfolioMetricsRequest(range=span(day, next_day)), metadata=md
        )
        assert [a.alert_id for a in metrics.alerts] == [
            a.alert_id for a in alerts if a.period.start_time.ToDatetime(UTC) < next_day
        ]
        only = await r.GetPortfolioMetrics(
            pb.GetPortfolioMetricsRequest(range=span(day, next_day), brand_ids=["modumind"]),
            metadata=md,
        )
        assert list(only.alerts) == []

        # The alerts export: one row per alert, as ListAlerts answers.
        data = b""
        async for m in r.Export(
            pb.ExportRequest(alerts=pb.ListAlertsRequest(page={"page_size": 1})), metadata=md
        ):
            data += m.chunk
        rows = list(csv.DictReader(io.StringIO(data.decode(), newline="")))
        assert [row["alert_id"] for row in rows] == [a.alert_id for a in alerts]
        assert [row["message"] for row in rows] == [a.message for a in alerts]

        # Pruning: rollups go after 90 days, alerts after 365 (the tenant's retention).
        reporting_settings = ReportingSettings.from_env()
        pool, tenants = s.reporting_runtime.pool, s.reporting_runtime.tenants
        assert await pool.fetchval("SELECT count(*) FROM rollup_counts")
        await delete_expired(pool, tenants, day + timedelta(days=100), reporting_settings)
        assert await pool.fetchval("SELECT count(*) FROM rollup_counts") == 0
        assert await pool.fetchval("SELECT count(*) FROM rollup_conversions") == 0
        assert len(await _list(r, md)) == len(alerts)
        await delete_expired(pool, tenants, day + timedelta(days=400), reporting_settings)
        assert await _list(r, md) == []
        assert await pool.fetchval("SELECT count(*) FROM outbox") == 0
