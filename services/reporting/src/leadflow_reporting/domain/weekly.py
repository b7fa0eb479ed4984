"""The weekly report's content: the week (Monday 00:00 to Monday 00:00 in a time zone), the
summary assembled from the business reports' answers, and recommended actions chosen by
fixed rules over that summary. Pure: plain data in, plain data out; times are microseconds
since the Unix epoch."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from typing import Protocol
from zoneinfo import ZoneInfo

from leadflow_reporting.domain import kpis
from leadflow_reporting.domain.insights import Finding, Kind
from leadflow_reporting.domain.quality import Quality
from leadflow_reporting.domain.stats import display, percent

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
# leadflow.reporting.v1.Dimension values the budget rule reads.
DIMENSION_CHANNEL, DIMENSION_SOURCE = 1, 2
# leadflow.attribution.v1.AttributionModel: first touch, last touch, linear.
MODELS = (1, 2, 3)
MODEL_NAMES = {1: "first touch", 2: "last touch", 3: "linear"}
MAX_INSIGHTS = 10
MAX_ACTIONS = 5
# A KPI move counts as a fall (or a rise of a lower-is-better KPI) beyond this.
FALL = 0.10
# Counts below this in both weeks are too small for a percentage to mean much.
MIN_COUNT = 5
# A conversion rate is compared only when both weeks have this many active subjects (the
# source insights' default minimum sample).
MIN_ACTIVE = 30
COUNT_KPIS = frozenset(
    {kpis.LEADS, kpis.CONVERSIONS, kpis.ACTIVE_SUBJECTS, kpis.ROUTED_LEADS, kpis.SLA_BREACHES}
)
KPI_LABELS = {
    kpis.LEADS: "new leads",
    kpis.ACTIVE_SUBJECTS: "active subjects",
    kpis.CONVERSIONS: "conversions",
    kpis.CONVERSION_RATE: "conversion rate",
    kpis.REVENUE: "revenue",
    kpis.ROUTED_LEADS: "routed leads",
    kpis.SLA_BREACHES: "SLA breaches",
    kpis.HOT_LEADS: "hot leads",
}


# ---------------------------------------------------------------------------------------
# The week
# ---------------------------------------------------------------------------------------


def _us(value: datetime) -> int:
    delta = value - EPOCH
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


def _midnight(day: date, zone: ZoneInfo) -> int:
    """The instant the local day starts (a midnight inside a DST gap: the gap's end)."""
    return _us(datetime.combine(day, time(0), tzinfo=zone))


def local_date(us: int, zone: ZoneInfo) -> date:
    return (EPOCH + timedelta(microseconds=us)).astimezone(zone).date()


@dataclass(frozen=True)
class Day:
    day: date
    start_us: int
    end_us: int


@dataclass(frozen=True)
class Week:
    monday: date
    start_us: int
    end_us: int
    time_zone: str

    @property
    def sunday(self) -> date:
        return self.monday + timedelta(days=6)

    @property
    def label(self) -> str:
        """E.g. "2025-03-03 to 2025-03-09"."""
        return f"{self.monday.isoformat()} to {self.sunday.isoformat()}"

    def days(self) -> list[Day]:
        zone = ZoneInfo(self.time_zone)
        bounds = [_midnight(self.monday + timedelta(days=k), zone) for k in range(8)]
        return [Day(self.monday + timedelta(days=k), bounds[k], bounds[k + 1]) for k in range(7)]


def week_at(monday: date, time_zone: str) -> Week:
    zone = ZoneInfo(time_zone)
    return Week(
        monday, _midnight(monday, zone), _midnight(monday + timedelta(days=7), zone), time_zone
    )


def week_of(instant_us: int, time_zone: str) -> Week:
    """The week (Monday 00:00 to the next Monday 00:00, local time) holding the instant."""
    day = local_date(instant_us, ZoneInfo(time_zone))
    return week_at(day - timedelta(days=day.weekday()), time_zone)


def report_week(instant_us: int | None, now_us: int, time_zone: str) -> Week:
    """The week holding the instant; without one, the last complete week before now."""
    if instant_us is not None:
        return week_of(instant_us, time_zone)
    return week_before(week_of(now_us, time_zone))


def week_before(week: Week) -> Week:
    return week_at(week.monday - timedelta(days=7), week.time_zone)


# ---------------------------------------------------------------------------------------
# Number formats shared by the actions and the renderings
# ---------------------------------------------------------------------------------------


def number(value: float | Decimal) -> str:
    """1234 -> "1,234"; 2.5 -> "2.5" (attributed conversions are fractional)."""
    v = float(value)
    if v == int(v):
        return f"{int(v):,}"
    return f"{v:,.1f}"


def money(amount: Decimal | float, currency: str) -> str:
    return f"{Decimal(amount).quantize(Decimal('0.01')):,} {currency}"


def kpi_value(c: kpis.KpiChange, value: float | Decimal) -> str:
    if c.kpi == kpis.CONVERSION_RATE:
        return percent(float(value))
    if c.currency:
        return money(value, c.currency)
    return number(value)


def kpi_label(c: kpis.KpiChange) -> str:
    label = KPI_LABELS.get(c.kpi, "kpi")
    return f"{label} ({c.currency})" if c.currency else label


def change_text(c: kpis.KpiChange) -> str:
    """ "+25%", "-40%", "new" (nothing the week before), "no change"."""
    rel = c.relative
    if rel is None:
        return "new" if c.current else "no change"
    if rel == 0:
        return "no change"
    return ("+" if rel > 0 else "-") + percent(abs(rel))


def scope_text(brand_id: str) -> str:
    return f"at {brand_id}" if brand_id else "across the portfolio"


# ---------------------------------------------------------------------------------------
# The summary
# ---------------------------------------------------------------------------------------


class BrandWeek(Protocol):
    """A brand's (or the portfolio's) figures over the week, as the portfolio report gives
    them."""

    @property
    def brand_id(self) -> str: ...
    @property
    def new_leads(self) -> int: ...
    @property
    def total_leads(self) -> int: ...
    @property
    def active(self) -> int: ...
    @property
    def conversions(self) -> int: ...
    @property
    def conversion_rate(self) -> float: ...
    @property
    def revenue(self) -> Mapping[str, Decimal]: ...
    @property
    def routed_in(self) -> int: ...
    @property
    def sla_breaches(self) -> int: ...
    @property
    def hot_leads(self) -> int: ...


class CreditRow(Protocol):
    @property
    def key(self) -> str: ...
    @property
    def conversions(self) -> float: ...


class ModelCredits(Protocol):
    """One attribution model's credits by channel, as the attribution summary gives them."""

    @property
    def model(self) -> int: ...
    @property
    def rows(self) -> Sequence[CreditRow]: ...
    @property
    def total(self) -> float: ...


class Alert(Protocol):
    """A KPI alert raised for the week."""

    @property
    def kpi(self) -> int: ...
    @property
    def brand_id(self) -> str: ...
    @property
    def message(self) -> str: ...


@dataclass(frozen=True)
class DayCount:
    day: date
    events: int
    conversions: int


@dataclass(frozen=True)
class Action:
    text: str
    rationale: str
    kpi: int
    brand_id: str = ""


@dataclass(frozen=True)
class WeeklySummary:
    title: str
    week: Week
    previous_week: Week
    kpis: list[kpis.KpiChange]  # portfolio first, then per brand
    total: BrandWeek
    brands: list[BrandWeek]
    top_insights: list[Finding]
    attribution: list[ModelCredits]
    lead_quality: Quality
    days: list[DayCount]
    alerts: list[Alert]
    actions: list[Action] = field(default_factory=list)


def default_title(tenant_id: str, week: Week) -> str:
    return f"{tenant_id} weekly report, {week.label}"


def distinct_findings(found: Sequence[Finding], limit: int = MAX_INSIGHTS) -> list[Finding]:
    """Highest impact first, a sentence once (channel and source often name the same
    values), at most `limit`."""
    seen: set[str] = set()
    out = []
    for f in sorted(found, key=lambda f: (-f.impact, f.text)):
        if f.text in seen:
            continue
        seen.add(f.text)
        out.append(f)
    return out[:limit]


def summary(
    *,
    title: str,
    week: Week,
    previous_week: Week,
    kpi_changes: Sequence[kpis.KpiChange],
    total: BrandWeek,
    brands: Sequence[BrandWeek],
    findings: Sequence[Finding],
    attribution: Sequence[ModelCredits],
    lead_quality: Quality,
    days: Sequence[DayCount],
    alerts: Sequence[Alert],
) -> WeeklySummary:
    """The summary with its recommended actions."""
    base = WeeklySummary(
        title=title,
        week=week,
        previous_week=previous_week,
        kpis=list(kpi_changes),
        total=total,
        brands=sorted(brands, key=lambda b: (-b.conversions, b.brand_id)),
        top_insights=distinct_findings(findings),
        attribution=list(attribution),
        lead_quality=lead_quality,
        days=list(days),
        alerts=list(alerts),
    )
    return WeeklySummary(**{**base.__dict__, "actions": recommend(base)})


# ---------------------------------------------------------------------------------------
# Recommended actions
# ---------------------------------------------------------------------------------------


def _active_base(changes: Sequence[kpis.KpiChange]) -> dict[str, float]:
    """Per scope, the smaller of the two weeks' active subjects."""
    return {
        c.brand_id: float(min(c.current, c.previous))
        for c in changes
        if c.kpi == kpis.ACTIVE_SUBJECTS
    }


def worsened(changes: Sequence[kpis.KpiChange]) -> list[kpis.KpiChange]:
    """KPIs that moved the bad way by more than FALL, on a base large enough to mean it:
    counts of at least MIN_COUNT in one of the weeks, conversion rates over at least
    MIN_ACTIVE active subjects in both. The portfolio first, then the largest moves."""
    active = _active_base(changes)
    out = []
    for c in changes:
        rel = c.relative
        if rel is None or c.favourable or c.direction == kpis.FLAT or abs(rel) <= FALL:
            continue
        if c.kpi in COUNT_KPIS and max(c.current, c.previous) < MIN_COUNT:
            continue
        if c.kpi == kpis.CONVERSION_RATE and active.get(c.brand_id, 0.0) < MIN_ACTIVE:
            continue
        out.append(c)
    return sorted(out, key=lambda c: (c.brand_id != "", -abs(c.relative or 0.0), c.brand_id))


def _kpi_action(c: kpis.KpiChange) -> Action:
    label = kpi_label(c)
    scope = scope_text(c.brand_id)
    if c.kpi in kpis.LOWER_IS_BETTER:
        text = f"Bring {label} {scope} back down"
        way = "rose"
    else:
        text = f"Find out why {label} fell {scope}"
        way = "fell"
    rationale = (
        f"{display(label)} {scope} {way} {percent(abs(c.relative or 0.0))} week over week"
        f" ({kpi_value(c, c.current)} vs {kpi_value(c, c.previous)})"
    )
    return Action(text, rationale, c.kpi, c.brand_id)


def _rate_gap(findings: Sequence[Finding]) -> Finding | None:
    """The strongest significant conversion-rate gap between sources (else channels)."""
    for dimension in (DIMENSION_SOURCE, DIMENSION_CHANNEL):
        for f in findings:
            if f.kind == Kind.CONVERSION_RATE_GAP and f.dimension == dimension:
                return f
    return None


def recommend(s: WeeklySummary) -> list[Action]:
    """At most MAX_ACTIONS, most important first:
    1. each alert raised for the week (at most 2);
    2. KPIs that worsened by more than 10% (at most 2, the portfolio's first);
    3. shift budget from the worse to the better of the strongest significant rate gap
       between sources (or channels);
    4. follow up hot leads where fewer leads were routed this week than are hot now;
    5. brands whose assignments breached their SLA (unless rule 2 named it);
    6. review a source that brought participants and no conversions."""
    out: list[Action] = []
    for a in s.alerts[:2]:
        label = KPI_LABELS.get(a.kpi, "KPI")
        out.append(
            Action(
                f"Act on the {label} alert {scope_text(a.brand_id)}",
                a.message,
                a.kpi,
                a.brand_id,
            )
        )
    fallen = worsened(s.kpis)[:2]
    out += [_kpi_action(c) for c in fallen]
    gap = _rate_gap(s.top_insights)
    if gap is not None and len(gap.values) == 2:
        better, worse = gap.values
        out.append(
            Action(
                f"Shift budget from {display(worse)} to {display(better)}",
                gap.text,
                kpis.CONVERSION_RATE,
            )
        )
    unfollowed = [b for b in s.brands if b.hot_leads > b.routed_in]
    if unfollowed:
        b = max(unfollowed, key=lambda b: (b.hot_leads - b.routed_in, b.brand_id))
        out.append(
            Action(
                f"Follow up the hot leads of {b.brand_id}",
                f"{number(b.hot_leads)} leads of {b.brand_id} are hot now and"
                f" {number(b.routed_in)} were routed to it this week",
                kpis.ROUTED_LEADS,
                b.brand_id,
            )
        )
    named = {(c.kpi, c.brand_id) for c in fallen}
    breached = [
        b for b in s.brands if b.sla_breaches > 0 and (kpis.SLA_BREACHES, b.brand_id) not in named
    ]
    if breached:
        b = max(breached, key=lambda b: (b.sla_breaches, b.brand_id))
        out.append(
            Action(
                f"Speed up first contact at {b.brand_id}",
                f"{number(b.sla_breaches)} assignments to {b.brand_id} breached their SLA"
                " this week",
                kpis.SLA_BREACHES,
                b.brand_id,
            )
        )
    shifted = set(gap.values) if gap is not None else set()
    for f in s.top_insights:
        if f.kind == Kind.ZERO_CONVERSIONS and f.values and f.values[0] not in shifted:
            out.append(
                Action(
                    f"Review what {display(f.values[0])} brings: no conversions this week",
                    f.text,
                    kpis.CONVERSIONS,
                )
            )
            break
    return out[:MAX_ACTIONS]
