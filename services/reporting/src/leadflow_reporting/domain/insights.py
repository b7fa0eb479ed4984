"""Source insights: subjects assigned to a dimension value by their first (or last) touch,
conversion rate and revenue per value, a two-proportion z-test of each value against the
rest, and plain-language findings ranked by impact. Pure functions; times in microseconds."""

from __future__ import annotations

import enum
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from itertools import combinations

from leadflow_reporting.domain.stats import ZTest, display, p_text, percent, rate, two_proportion_z

NONE = "(none)"


class Kind(enum.Enum):
    CONVERSION_RATE_GAP = 1
    ZERO_CONVERSIONS = 2
    REVENUE_CONCENTRATION = 3
    KPI_CHANGE = 4


@dataclass(frozen=True)
class Touch:
    subject: int
    time_us: int
    values: Mapping[str, str]  # dimension key -> value ('' when the touch has none)


@dataclass(frozen=True)
class Conversion:
    subject: int
    time_us: int
    value: Decimal | None = None
    currency: str = ""


@dataclass(frozen=True)
class Participant:
    subject: int
    value: str
    converted: bool
    revenue: Mapping[str, Decimal] = field(default_factory=dict)


def participants(
    touches: Sequence[Touch], conversions: Sequence[Conversion], key: str, last_touch: bool
) -> list[Participant]:
    """One participant per subject with a touch: first touch's value, or (last_touch) the
    last touch at or before its first conversion (non-converters: the last touch)."""
    by_subject: dict[int, list[Touch]] = defaultdict(list)
    for t in touches:
        by_subject[t.subject].append(t)
    converted: dict[int, list[Conversion]] = defaultdict(list)
    for c in conversions:
        converted[c.subject].append(c)
    out = []
    for subject, rows in sorted(by_subject.items()):
        rows.sort(key=lambda t: t.time_us)
        mine = converted.get(subject, [])
        if last_touch:
            first = min((c.time_us for c in mine), default=None)
            before = [t for t in rows if first is None or t.time_us <= first]
            chosen = before[-1] if before else rows[0]
        else:
            chosen = rows[0]
        revenue: dict[str, Decimal] = defaultdict(Decimal)
        for c in mine:
            if c.value is not None and c.currency:
                revenue[c.currency] += c.value
        out.append(Participant(subject, chosen.values.get(key) or NONE, bool(mine), revenue))
    return out


@dataclass
class Group:
    value: str
    participants: int
    conversions: int
    revenue: dict[str, Decimal]
    below_minimum: bool
    test: ZTest | None = None

    @property
    def rate(self) -> float:
        return rate(self.conversions, self.participants)


def groups(people: Sequence[Participant], min_participants: int, alpha: float) -> list[Group]:
    """Groups by participants, largest first (then by value); each eligible group tested
    against all the others together when they too reach the minimum."""
    acc: dict[str, Group] = {}
    for p in people:
        g = acc.setdefault(p.value, Group(p.value, 0, 0, defaultdict(Decimal), False))
        g.participants += 1
        g.conversions += p.converted
        for currency, amount in p.revenue.items():
            g.revenue[currency] += amount
    total_n = sum(g.participants for g in acc.values())
    total_x = sum(g.conversions for g in acc.values())
    out = sorted(acc.values(), key=lambda g: (-g.participants, g.value))
    for g in out:
        g.revenue = dict(sorted(g.revenue.items()))
        g.below_minimum = g.participants < min_participants
        rest_n, rest_x = total_n - g.participants, total_x - g.conversions
        if not g.below_minimum and rest_n >= max(min_participants, 1):
            g.test = two_proportion_z(g.conversions, g.participants, rest_x, rest_n, alpha)
    return out


@dataclass(frozen=True)
class Finding:
    text: str
    kind: Kind
    impact: float
    values: tuple[str, ...] = ()
    test: ZTest | None = None
    dimension: int = 0
    brand_id: str = ""


def _money(amount: Decimal, currency: str) -> str:
    return f"{amount.quantize(Decimal('0.01')):,} {currency}"


def findings(
    dimension: int, found: Sequence[Group], min_participants: int, alpha: float
) -> list[Finding]:
    """Rate gaps between eligible values that test significant, values with many
    participants and no conversions, values that bring at least half the revenue."""
    eligible = [g for g in found if g.participants >= max(min_participants, 1)]
    out: list[Finding] = []
    for a, b in combinations(eligible, 2):
        if (b.rate, -b.participants) > (a.rate, -a.participants):
            a, b = b, a
        test = two_proportion_z(a.conversions, a.participants, b.conversions, b.participants, alpha)
        if not test.significant:
            continue
        text = (
            f"{display(a.value)} converts at {percent(a.rate)} ({a.conversions}/{a.participants}),"
            f" {display(b.value)} at {percent(b.rate)} ({b.conversions}/{b.participants}):"
            f" the difference is significant ({p_text(test.p_value)})"
        )
        impact = (a.rate - b.rate) * min(a.participants, b.participants)
        out.append(
            Finding(text, Kind.CONVERSION_RATE_GAP, impact, (a.value, b.value), test, dimension)
        )
    total_n = sum(g.participants for g in found)
    total_x = sum(g.conversions for g in found)
    overall = rate(total_x, total_n)
    for g in eligible:
        if g.conversions == 0 and total_x > 0:
            text = (
                f"{display(g.value)} brought {g.participants} participants and no conversions"
                f" (overall {percent(overall)})"
            )
            out.append(
                Finding(
                    text,
                    Kind.ZERO_CONVERSIONS,
                    overall * g.participants,
                    (g.value,),
                    None,
                    dimension,
                )
            )
    currencies = sorted({c for g in found for c in g.revenue})
    for currency in currencies:
        earners = [g for g in found if g.revenue.get(currency, Decimal(0)) > 0]
        total = sum((g.revenue.get(currency, Decimal(0)) for g in found), Decimal(0))
        if len(earners) < 2 or total <= 0:
            continue
        for g in earners:
            share = float(g.revenue[currency] / total)
            if share >= 0.5:
                text = (
                    f"{display(g.value)} brings {percent(share)} of {currency} revenue"
                    f" ({_money(g.revenue[currency], currency)} of {_money(total, currency)})"
                )
                out.append(
                    Finding(text, Kind.REVENUE_CONCENTRATION, share, (g.value,), None, dimension)
                )
    return out


def ranked(found: Sequence[Finding], limit: int) -> list[Finding]:
    """Highest impact first (ties by text), at most `limit`."""
    return sorted(found, key=lambda f: (-f.impact, f.text))[:limit]
