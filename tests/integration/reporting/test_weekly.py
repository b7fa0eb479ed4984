"""GetWeeklyReport over data pushed through ingest, scoring and attribution: KPIs week over
week, brand figures, events and conversions per local day and the recommended actions
compared with the same questions answered here in plain Python; the parts borrowed from
other reports equal those reports' answers; the weekly_report export; `leadflow report
weekly` run as a process against the running service (with a key, with a temporary key,
refusing another tenant's key); a KPI alert of the week in the report and its actions;
input validation; and the HTML rendered in headless Chromium (no console messages, a
screenshot that is not blank, the charts in the DOM)."""

from __future__ import annotations

import asyncio
import csv
import html
import io
import math
import os
import random
import re
import shutil
import statistics
import subprocess
import sys
from collections import defaultdict
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from html.parser import HTMLParser
from pathlib import Path
from zoneinfo import ZoneInfo

import grpc
import pytest
from harness import new_key
from ingest_support import event
from reporting_support import full_suite, suite

from leadflow.common.v1 import time_range_pb2
from leadflow.ingest.v1 import ingest_service_pb2 as ingest_pb
from leadflow.ingest.v1 import profile_pb2
from leadflow.reporting.v1 import alerts_pb2
from leadflow.reporting.v1 import report_types_pb2 as rt
from leadflow.reporting.v1 import reporting_service_pb2 as pb
from leadflow_reporting.alerts import Alerts

pytestmark = pytest.mark.integration

TENANT = "371minds"
TZ = "America/New_York"
ZONE = ZoneInfo(TZ)
BRANDS = ("modumind", "stacksense", "epicquest")
# Purchase probability per source: (the week before, this week). Conversions fall.
SOURCES = {"email": (0.6, 0.45), "google": (0.4, 0.25), "twitter": (0.1, 0.0)}
LEADS = 240
ANONYMOUS = 30
KPI_NAMES = ("leads", "active_subjects", "conversions", "conversion_rate")


@dataclass(frozen=True)
class Week:
    monday: date
    start: datetime
    end: datetime


def week_holding(t: datetime) -> Week:
    """Monday 00:00 to Monday 00:00 in New York, worked out here with zoneinfo."""
    local = t.astimezone(ZONE)
    monday = local.date() - timedelta(days=local.weekday())
    start = datetime.combine(monday, time(0), tzinfo=ZONE).astimezone(UTC)
    end = datetime.combine(monday + timedelta(days=7), time(0), tzinfo=ZONE).astimezone(UTC)
    return Week(monday, start, end)


@dataclass(frozen=True)
class Sent:
    person: str
    lead_id: str
    anonymous_id: str
    brand: str
    kind: str
    at: datetime
    source: str = ""
    value: Decimal | None = None


@dataclass
class Data:
    now: datetime
    week: Week
    previous: Week
    leads: dict[str, str]  # lead id -> home brand
    events: list[Sent]


def generate(now: datetime, leads_count: int = LEADS, anonymous: int = ANONYMOUS) -> Data:
    """Leads split between this (unfinished) week and the week before, with a page view
    from a source and maybe a purchase; anonymous visitors this week."""
    rng = random.Random(29)
    week = week_holding(now)
    previous = week_holding(week.start - timedelta(microseconds=1))
    # This week's events lie between its start and a quarter of an hour ago.
    span_now = max((now - timedelta(minutes=15) - week.start).total_seconds(), 60.0)
    span_before = (previous.end - previous.start).total_seconds() - 900
    leads: dict[str, str] = {}
    events: list[Sent] = []
    for i in range(leads_count):
        this_week = i % 2 == 0
        source = list(SOURCES)[i % 3]
        brand = BRANDS[(i // 6) % 3]
        lead = f"lead-{i}"
        leads[lead] = brand
        origin, span = (week.start, span_now) if this_week else (previous.start, span_before)
        visit = origin + timedelta(seconds=rng.random() * span)
        events.append(Sent(lead, lead, "", brand, "page_view", visit, source))
        if i % 4 == 0:
            events.append(Sent(lead, lead, "", brand, "click", visit + timedelta(minutes=5)))
        if rng.random() < SOURCES[source][this_week]:
            value = Decimal(40 + 10 * (i % 5))
            bought = visit + timedelta(minutes=10)
            events.append(Sent(lead, lead, "", brand, "purchase", bought, "", value))
    for j in range(anonymous):
        visit = week.start + timedelta(seconds=rng.random() * span_now)
        anon = f"anon-{j}"
        events.append(Sent(anon, "", anon, BRANDS[j % 3], "page_view", visit, "direct"))
    return Data(now, week, previous, leads, events)


def track_events(d: Data) -> list[object]:
    out = []
    for n, e in enumerate(d.events):
        fields: dict[str, object] = {}
        if e.source:
            fields["marketing"] = {"source": e.source, "channel": e.source}
        if e.value is not None:
            fields["value"] = (int(e.value), 0, "USD")
        out.append(
            event(
                f"w-{n}",
                type=e.kind,
                lead_id=e.lead_id,
                anonymous_id=e.anonymous_id,
                brand_id=e.brand,
                occurred_at=e.at,
                session_id=f"s-{e.person}",
                **fields,
            )
        )
    return out


async def load(s, d: Data) -> None:
    await asyncio.gather(
        *(
            s.upstream.ingest.Identify(
                ingest_pb.IdentifyRequest(
                    lead_id=lead, profile=profile_pb2.LeadProfile(home_brand_id=brand)
                ),
                metadata=s.metadata,
            )
            for lead, brand in d.leads.items()
        )
    )
    await s.track(track_events(d))
    await s.applied()


# ---------------------------------------------------------------------------------------
# The same questions answered here
# ---------------------------------------------------------------------------------------


@dataclass
class Figures:
    leads: int = 0
    active: int = 0
    conversions: int = 0
    converting: int = 0
    revenue: Decimal = Decimal(0)

    @property
    def rate(self) -> float:
        return self.converting / self.active if self.active else 0.0


def figures(d: Data, week: Week, identified: dict[str, datetime]) -> dict[str, Figures]:
    """Per brand and for the portfolio (""): leads identified in the week, subjects active,
    conversions (purchases), converting subjects, revenue."""
    out: dict[str, Figures] = defaultdict(Figures)
    active: dict[str, set[str]] = defaultdict(set)
    converting: dict[str, set[str]] = defaultdict(set)
    for e in d.events:
        if not week.start <= e.at < week.end:
            continue
        for scope in ("", e.brand):
            active[scope].add(e.person)
            if e.kind == "purchase":
                out[scope].conversions += 1
                out[scope].revenue += e.value or 0
                converting[scope].add(e.person)
    for scope, people in active.items():
        out[scope].active = len(people)
        out[scope].converting = len(converting[scope])
    for lead, brand in d.leads.items():
        if week.start <= identified[lead] < week.end:
            out[""].leads += 1
            out[brand].leads += 1
    return out


def expected_kpis(now: dict[str, Figures], before: dict[str, Figures]) -> list[tuple]:
    """(brand, kpi name, current, previous) in the report's order: the portfolio, then the
    brands by id; revenue only where either week has some."""
    rows = []
    for scope in ["", *sorted((set(now) | set(before)) - {""})]:
        a, b = now.get(scope, Figures()), before.get(scope, Figures())
        rows += [
            (scope, "leads", a.leads, b.leads),
            (scope, "active_subjects", a.active, b.active),
            (scope, "conversions", a.conversions, b.conversions),
            (scope, "conversion_rate", a.rate, b.rate),
        ]
        if a.revenue or b.revenue:
            rows.append((scope, "revenue", a.revenue, b.revenue))
        rows += [(scope, "routed_leads", 0, 0), (scope, "sla_breaches", 0, 0)]
    return rows


def money(m) -> Decimal:
    return Decimal(m.units) + Decimal(m.nanos) / Decimal(10**9)


def value(v: rt.KpiValue) -> object:
    return money(v.money) if v.WhichOneof("value") == "money" else v.number


def pct(x: float) -> str:
    text = f"{100 * x:.1f}"
    return (text[:-2] if text.endswith(".0") else text) + "%"


def z_test(x1: int, n1: int, x2: int, n2: int) -> float:
    """Two-sided p of the pooled two-proportion z-test, written out again."""
    p = (x1 + x2) / (n1 + n2)
    z = (x1 / n1 - x2 / n2) / math.sqrt(p * (1 - p) * (1 / n1 + 1 / n2))
    return 2 * (1 - statistics.NormalDist().cdf(abs(z)))


def check_kpis(summary: pb.WeeklySummary, expected: list[tuple]) -> None:
    got = [(c.brand_id, c.kpi_name, value(c.current), value(c.previous)) for c in summary.kpis]
    assert [g[:2] for g in got] == [e[:2] for e in expected]
    for g, e, c in zip(got, expected, summary.kpis, strict=True):
        assert g[2] == pytest.approx(e[2]) and g[3] == pytest.approx(e[3]), (g, e)
        current, previous = e[2], e[3]
        if previous:
            assert c.relative_change == pytest.approx(float(current - previous) / float(previous))
        else:
            assert not c.HasField("relative_change")
        way = (
            rt.CHANGE_DIRECTION_UP
            if current > previous
            else rt.CHANGE_DIRECTION_DOWN
            if current < previous
            else rt.CHANGE_DIRECTION_FLAT
        )
        assert c.direction == way, g
        lower_is_better = c.kpi_name == "sla_breaches"
        assert c.favourable == (way != rt.CHANGE_DIRECTION_FLAT and (way == 1) != lower_is_better)


def day_lines(text: str) -> dict[str, tuple[int, int]]:
    found = re.findall(r"^  \w{3} (\d{4}-\d\d-\d\d)  events +([\d,]+)  conversions +([\d,]+)$",
                       text, re.M)  # fmt: skip
    return {day: (int(n.replace(",", "")), int(c.replace(",", ""))) for day, n, c in found}


def per_local_day(d: Data, week: Week) -> dict[str, tuple[int, int]]:
    out = {(week.monday + timedelta(days=k)).isoformat(): [0, 0] for k in range(7)}
    for e in d.events:
        if week.start <= e.at < week.end:
            counts = out[e.at.astimezone(ZONE).date().isoformat()]
            counts[0] += 1
            counts[1] += e.kind == "purchase"
    return {k: (v[0], v[1]) for k, v in out.items()}


def span(start: datetime, end: datetime) -> time_range_pb2.TimeRange:
    r = time_range_pb2.TimeRange()
    r.start_time.FromDatetime(start)
    r.end_time.FromDatetime(end)
    return r


async def leadflow(*args: str, env: dict[str, str]) -> tuple[int, str, str]:
    """The `leadflow` command as a process (asynchronously: the service under test runs in
    this process's event loop)."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "leadflow_platform.cli", *args,
        env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )  # fmt: skip
    out, err = await asyncio.wait_for(proc.communicate(), 120)
    return proc.returncode or 0, out.decode(), err.decode()


async def drain(stream) -> list:
    return [m async for m in stream]


def clean_env(tmp_path: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("LEADFLOW_")}
    env["LEADFLOW_DATA_DIR"] = str(tmp_path / "no-stack")  # never a developer's running stack
    return env


# ---------------------------------------------------------------------------------------
# The tests
# ---------------------------------------------------------------------------------------


async def test_weekly_report_matches_an_independent_computation(settings, tmp_path) -> None:
    d = generate(datetime.now(UTC))
    async with full_suite(settings) as s:
        await load(s, d)
        # Every lead was identified by its Identify call, during this test: this week.
        identified = dict.fromkeys(d.leads, datetime.now(UTC))
        assert all(d.week.start <= t < d.week.end for t in identified.values())
        md = s.metadata
        request = pb.GetWeeklyReportRequest(time_zone=TZ)
        request.week_start.FromDatetime(d.now)
        call = s.reporting.GetWeeklyReport(request, metadata=md)
        reply = await call
        assert dict(await call.initial_metadata())["leadflow-tenant"] == TENANT
        summary = reply.summary

        # The week and the week before, Monday to Monday in New York.
        assert summary.week.start_time.ToDatetime(UTC) == d.week.start
        assert summary.week.end_time.ToDatetime(UTC) == d.week.end
        assert summary.previous_week.start_time.ToDatetime(UTC) == d.previous.start
        assert summary.previous_week.end_time.ToDatetime(UTC) == d.previous.end == d.week.start

        # KPIs week over week, portfolio then brands, against plain Python.
        now_f = figures(d, d.week, identified)
        before_f = figures(d, d.previous, identified)
        check_kpis(summary, expected_kpis(now_f, before_f))
        assert now_f[""].conversions < 0.9 * before_f[""].conversions  # the data's premise

        # Brand figures of the week.
        assert [b.brand_id for b in summary.brands] == sorted(
            BRANDS, key=lambda b: (-now_f[b].conversions, b)
        )
        for b in summary.brands:
            f = now_f[b.brand_id]
            assert (b.new_leads, b.active_subjects, b.conversions) == (
                f.leads,
                f.active,
                f.conversions,
            )
            assert (money(b.revenue[0]) if b.revenue else 0) == f.revenue
            assert b.conversion_rate == pytest.approx(f.rate)

        # Events and conversions per local day, as the text (and the chart) shows them.
        assert day_lines(reply.text) == per_local_day(d, d.week)

        # Recommended actions (no alerts): first the two largest falls of more than 10%
        # (the portfolio's before the brands'), then the budget shift, with their numbers
        # worked out here.
        assert 3 <= len(summary.actions) <= 5
        falls = []
        for brand, name, cur, prev in expected_kpis(now_f, before_f):
            if not prev or cur >= prev or (prev - cur) / prev <= 0.10:
                continue
            if name == "conversion_rate":
                if min(now_f[brand].active, before_f[brand].active) < 30:
                    continue
            elif name != "revenue" and max(cur, prev) < 5:
                continue
            falls.append((brand != "", -(prev - cur) / prev, brand, name, cur, prev))
        assert falls and falls[0][2] == ""  # the data's premise: the portfolio fell
        for action, (_, _, brand, name, cur, prev) in zip(
            summary.actions[:2], sorted(falls)[:2], strict=True
        ):
            label = {"revenue": "revenue (USD)"}.get(name, name.replace("_", " "))
            scope = f"at {brand}" if brand else "across the portfolio"
            show = {
                "conversion_rate": pct,
                "revenue": lambda v: f"{v:,.2f} USD",
            }.get(name, lambda v: f"{v:,}")
            assert (action.text, action.rationale, action.brand_id) == (
                f"Find out why {label} fell {scope}",
                f"{label[0].upper()}{label[1:]} {scope} fell {pct((prev - cur) / prev)} week"
                f" over week ({show(cur)} vs {show(prev)})",
                brand,
            )
        actions = {a.text: a for a in summary.actions}

        def in_week(source: str) -> tuple[int, int]:
            people = {
                e.person
                for e in d.events
                if e.source == source and d.week.start <= e.at < d.week.end
            }
            bought = {
                e.person
                for e in d.events
                if e.kind == "purchase" and e.person in people and e.at < d.week.end
            }
            return len(bought), len(people)

        (xe, ne), (xt, nt) = in_week("email"), in_week("twitter")
        p = z_test(xe, ne, xt, nt)
        assert p < 0.05
        shift = actions["Shift budget from Twitter to Email"]
        assert shift.rationale == (
            f"Email converts at {pct(xe / ne)} ({xe}/{ne}), Twitter at {pct(xt / nt)}"
            f" ({xt}/{nt}): the difference is significant"
            f" ({'p < 0.001' if p < 0.0005 else f'p = {p:.3f}'})"
        )

        # What comes from other reports equals their answers over the same week.
        week_range = span(d.week.start, d.week.end)
        insights = await s.reporting.GetSourceInsights(
            pb.GetSourceInsightsRequest(
                range=week_range, dimensions=[rt.DIMENSION_SOURCE, rt.DIMENSION_CHANNEL],
                max_findings=20,
            ),
            metadata=md,
        )  # fmt: skip
        distinct: list[str] = []
        for f in insights.findings:
            if f.text not in distinct:
                distinct.append(f.text)
        assert [f.text for f in summary.top_insights] == distinct[:10]
        attribution = await s.reporting.GetAttributionSummary(
            pb.GetAttributionSummaryRequest(range=week_range), metadata=md
        )
        assert list(summary.attribution) == list(attribution.models)
        assert summary.attribution[0].total_conversions > 0
        quality = await s.reporting.GetLeadQuality(pb.GetLeadQualityRequest(), metadata=md)
        assert summary.lead_quality == quality.total
        assert summary.lead_quality.lead_count == LEADS
        assert list(summary.alerts) == []

        # The renderings carry the same numbers.
        for text, escape in ((reply.text, str), (reply.html, html.escape)):
            assert f"{TENANT} weekly report, {d.week.monday.isoformat()} to" in text
            for a in summary.actions:
                assert escape(a.text) in text and escape(a.rationale) in text
        assert reply.html.count("<svg") == 4

        # Without week_start: the last complete week, compared with the one before.
        default = await s.reporting.GetWeeklyReport(
            pb.GetWeeklyReportRequest(time_zone=TZ), metadata=md
        )
        assert default.summary.week == summary.previous_week
        before_before = week_holding(d.previous.start - timedelta(microseconds=1))
        check_kpis(
            default.summary,
            expected_kpis(before_f, figures(d, before_before, identified)),
        )

        # The export: one row per KPI change.
        export = pb.ExportRequest(weekly_report=request)
        data = b"".join([m.chunk async for m in s.reporting.Export(export, metadata=md) if m.chunk])
        rows = list(csv.DictReader(io.StringIO(data.decode(), newline="")))
        assert len(rows) == len(summary.kpis)
        for row, c in zip(rows, summary.kpis, strict=True):
            assert (row["brand_id"], row["kpi"]) == (c.brand_id, c.kpi_name)
            assert float(row["current"]) == pytest.approx(float(value(c.current)))
            assert row["week_start"] == d.week.start.strftime("%Y-%m-%dT%H:%M:%SZ")

        # `leadflow report weekly` against this service.
        target = f"127.0.0.1:{s.reporting_runtime.port}"
        env = clean_env(tmp_path)
        out_html, out_text = tmp_path / "weekly.html", tmp_path / "weekly.txt"
        local_day = d.now.astimezone(ZONE).date().isoformat()
        code, out, err = await leadflow(
            "report", "weekly", "--tenant", TENANT, "--out", str(out_html), "--text",
            str(out_text), "--week", local_day, "--time-zone", TZ, "--target", target,
            "--key", s.upstream.key, env=env,
        )  # fmt: skip
        assert code == 0, err
        assert out.splitlines() == [str(out_html), str(out_text)]
        assert out_html.read_text(encoding="utf-8") == reply.html
        assert out_text.read_text(encoding="utf-8") == reply.text

        # No key: a temporary read key from the database, revoked after the call.
        temp_env = {**env, "LEADFLOW_DATABASE_URL": settings.database_url}
        second = tmp_path / "second.html"
        code, out, err = await leadflow(
            "report", "weekly", "--tenant", TENANT, "--out", str(second), "--target", target,
            "--time-zone", TZ, env=temp_env,
        )  # fmt: skip
        assert code == 0, err
        assert out.strip() == str(second)
        assert second.read_text(encoding="utf-8") == default.html
        keys = await s.pool.fetch(
            "SELECT scopes, revoked_at FROM tenancy.api_keys WHERE name = $1",
            "leadflow report weekly (temporary)",
        )
        assert [(list(k["scopes"]), k["revoked_at"] is not None) for k in keys] == [
            (["read"], True)
        ]

        # Another tenant's key: refused, nothing written.
        other = await new_key(settings.database_url, "other-tenant", "read")
        refused = tmp_path / "refused.html"
        code, out, err = await leadflow(
            "report", "weekly", "--tenant", TENANT, "--out", str(refused), "--target", target,
            "--key", other, env=env,
        )  # fmt: skip
        assert code == 1
        assert "belongs to tenant 'other-tenant', not '371minds'" in err
        assert not refused.exists()
        # No key and no database: told what to do.
        code, _, err = await leadflow(
            "report", "weekly", "--tenant", TENANT, "--out", str(refused), "--target", target,
            env=env,
        )  # fmt: skip
        assert code == 1 and "LEADFLOW_API_KEY" in err and not refused.exists()

        # A KPI alert raised for today, a day of the week: listed with the report, its
        # action first.
        rule = alerts_pb2.KpiAlertRule(
            rule_id="few-conversions", kpi=rt.KPI_CONVERSIONS, threshold=rt.KpiValue(number=1000)
        )
        await s.reporting.PutAlertConfig(
            pb.PutAlertConfigRequest(config=alerts_pb2.AlertConfig(rules=[rule], time_zone=TZ)),
            metadata=md,
        )
        tomorrow = d.now.astimezone(ZONE).date() + timedelta(days=1)
        # Evaluated as if the day had closed (and settled: 5 minutes by default).
        closed = datetime.combine(tomorrow, time(0, 6), tzinfo=ZONE)
        raised = await Alerts.of(s.reporting_runtime).evaluate(int(closed.timestamp()) * 10**6)
        assert [a.rule_id for a in raised] == ["few-conversions"]
        again = await s.reporting.GetWeeklyReport(request, metadata=md)
        listed = await s.reporting.ListAlerts(pb.ListAlertsRequest(), metadata=md)
        assert len(listed.alerts) == 1 and list(again.summary.alerts) == list(listed.alerts)
        alert = listed.alerts[0]
        assert d.week.start <= alert.period.start_time.ToDatetime(UTC) < d.week.end
        first = again.summary.actions[0]
        assert (first.text, first.rationale, first.kpi, first.brand_id) == (
            "Act on the conversions alert across the portfolio",
            alert.message,
            rt.KPI_CONVERSIONS,
            "",
        )
        assert [a.text for a in again.summary.actions[1:3]] == [a.text for a in summary.actions[:2]]
        assert html.escape(alert.message) in again.html and alert.message in again.text


async def test_weekly_report_validates_its_input(settings) -> None:
    async with suite(settings) as s:
        future = datetime.now(UTC) + timedelta(days=9)
        early = datetime(1970, 3, 2, tzinfo=UTC)
        cases = [
            (pb.GetWeeklyReportRequest(time_zone="Mars/Olympus"), "time_zone"),
            (pb.GetWeeklyReportRequest(brand_ids=[""]), "brand_ids[0]"),
            (pb.GetWeeklyReportRequest(title="x" * 201), "title"),
        ]
        for t, reason in (
            (future, "the week has not started"),
            (early, "must be in 1971 or later"),
        ):
            r = pb.GetWeeklyReportRequest()
            r.week_start.FromDatetime(t)
            cases.append((r, f"week_start: {reason}"))
        for request, needle in cases:
            with pytest.raises(grpc.aio.AioRpcError) as err:
                await s.reporting.GetWeeklyReport(request, metadata=s.metadata)
            assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
            assert needle in (err.value.details() or ""), err.value.details()
        export = pb.ExportRequest(weekly_report=pb.GetWeeklyReportRequest(time_zone="Mars/Olympus"))
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await drain(s.reporting.Export(export, metadata=s.metadata))
        assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert "weekly_report.time_zone" in (err.value.details() or "")
        # A week with no data at all still renders, every chart saying so.
        empty = await s.reporting.GetWeeklyReport(
            pb.GetWeeklyReportRequest(time_zone="Asia/Kolkata", title="Empty <b>week</b>"),
            metadata=s.metadata,
        )
        assert empty.html.count("no data this week") == 4
        assert "Empty &lt;b&gt;week&lt;/b&gt;" in empty.html and "<b>" not in empty.html
        assert list(empty.summary.actions) == [] and list(empty.summary.top_insights) == []


# ---------------------------------------------------------------------------------------
# Headless Chromium
# ---------------------------------------------------------------------------------------


def chromium() -> str:
    found = os.environ.get("LEADFLOW_CHROMIUM") or next(
        (p for n in ("chromium", "chromium-browser", "google-chrome") if (p := shutil.which(n))),
        None,
    )
    if not found:
        pytest.skip(
            "no Chromium found: install it (Debian/Ubuntu: `apt-get install -y chromium`)"
            " or point LEADFLOW_CHROMIUM at a Chromium or Chrome binary"
        )
    return found


def run_chromium(binary: str, page: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [binary, "--headless=new", "--no-sandbox", "--disable-gpu", "--enable-logging=stderr",
         "--v=0", f"--user-data-dir={page.parent / 'chromium-profile'}", *args, page.as_uri()],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip


def console_messages(stderr: str) -> list[str]:
    """What the page wrote to the console (any level) or threw, as Chromium logs it."""
    return [line for line in stderr.splitlines() if ":CONSOLE" in line]


class Dom(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.stack: list[str] = []
        self.charts: list[dict[str, int]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        classes = (dict(attrs).get("class") or "").split()
        if tag == "svg":
            self.charts.append(defaultdict(int))
        elif self.charts and "svg" in self.stack:
            for c in classes:
                self.charts[-1][f"{tag}.{c}"] += 1
        if tag not in ("rect", "circle", "line", "path", "br", "meta"):
            self.stack.append(tag)

    def handle_endtag(self, tag: str) -> None:
        if tag in self.stack:
            while self.stack.pop() != tag:
                pass


def pixels_off_background(png: Path) -> tuple[int, int, int]:
    """(pixels, pixels unlike the top-left background, pixels of the first chart colour)."""
    from PIL import Image

    with Image.open(png) as image:
        rgb = image.convert("RGB")
        background = rgb.getpixel((0, 0))
        colours = rgb.getcolors(maxcolors=rgb.width * rgb.height) or []
    total = sum(n for n, _ in colours)
    off = sum(n for n, c in colours if c != background)
    blue = sum(
        n for n, c in colours if sum(abs(a - b) for a, b in zip(c, (37, 99, 235), strict=True)) < 30
    )
    return total, off, blue


async def test_weekly_report_renders_in_headless_chromium(settings, tmp_path) -> None:
    binary = chromium()
    d = generate(datetime.now(UTC), leads_count=60, anonymous=0)
    async with full_suite(settings) as s:
        await load(s, d)
        request = pb.GetWeeklyReportRequest(time_zone=TZ)
        request.week_start.FromDatetime(d.now)
        reply = await s.reporting.GetWeeklyReport(request, metadata=s.metadata)
    page = tmp_path / "weekly.html"
    page.write_text(reply.html, encoding="utf-8")

    # The check can fail: a page that logs is caught.
    noisy = tmp_path / "noisy.html"
    noisy.write_text("<!DOCTYPE html><p>x</p><script>console.error('boom')</script>")
    assert console_messages(run_chromium(binary, noisy, "--dump-dom").stderr)

    shot = tmp_path / "weekly.png"
    result = run_chromium(binary, page, f"--screenshot={shot}", "--window-size=1200,4000")
    assert result.returncode == 0, result.stderr[-2000:]
    assert console_messages(result.stderr) == []
    assert shot.stat().st_size > 0
    total, off, blue = pixels_off_background(shot)
    assert total == 1200 * 4000
    assert off > 0.03 * total, (off, total)  # text, tables and charts drawn
    assert blue > 2_000, blue  # the bars and lines of the first series

    dom = run_chromium(binary, page, "--dump-dom")
    assert dom.returncode == 0 and console_messages(dom.stderr) == []
    parsed = Dom()
    parsed.feed(dom.stdout)
    assert len(parsed.charts) == 4
    brands, days, attribution, grades = parsed.charts
    summary = reply.summary
    assert brands["rect.bar"] == 2 * len(summary.brands) == 6
    assert days["path.line"] == 2 and days["circle.point"] == 14
    channels = {r.key for m in summary.attribution for r in m.rows}
    assert attribution["rect.bar"] == 3 * min(len(channels), 8) > 0
    assert grades["rect.bar"] == 7
    for chart in parsed.charts:
        assert chart["text.axis-label"] == 2 and chart["text.no-data"] == 0
