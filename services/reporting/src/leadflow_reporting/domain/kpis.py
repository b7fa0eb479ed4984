"""The KPIs (leadflow.reporting.v1.Kpi) and their changes of one period against the previous
one of the same length."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

# leadflow.reporting.v1.Kpi values.
LEADS, CONVERSIONS, CONVERSION_RATE, REVENUE = 1, 2, 3, 4
MRR, ARR, ACTIVE_SUBJECTS, SESSIONS = 5, 6, 7, 8
BOUNCE_RATE, EMAIL_OPEN_RATE, EMAIL_CLICK_RATE = 9, 10, 11
HOT_LEADS, ROUTED_LEADS, SLA_BREACHES = 12, 13, 14
ALL = tuple(range(LEADS, SLA_BREACHES + 1))
LOWER_IS_BETTER = frozenset({BOUNCE_RATE, SLA_BREACHES})
# Amounts of money (one currency); the other KPIs are numbers.
MONEY = frozenset({REVENUE, MRR, ARR})
# Shares, 0..1.
RATES = frozenset({CONVERSION_RATE, BOUNCE_RATE, EMAIL_OPEN_RATE, EMAIL_CLICK_RATE})
# How a sentence names each KPI, and whether it takes "were" (plural) or "was".
NAMES: dict[int, tuple[str, bool]] = {
    LEADS: ("leads", True),
    CONVERSIONS: ("conversions", True),
    CONVERSION_RATE: ("conversion rate", False),
    REVENUE: ("revenue", False),
    MRR: ("MRR", False),
    ARR: ("ARR", False),
    ACTIVE_SUBJECTS: ("active subjects", True),
    SESSIONS: ("sessions", True),
    BOUNCE_RATE: ("bounce rate", False),
    EMAIL_OPEN_RATE: ("email open rate", False),
    EMAIL_CLICK_RATE: ("email click rate", False),
    HOT_LEADS: ("hot leads", True),
    ROUTED_LEADS: ("routed leads", True),
    SLA_BREACHES: ("SLA breaches", True),
}
UP, DOWN, FLAT = 1, 2, 3


@dataclass(frozen=True)
class KpiChange:
    kpi: int
    brand_id: str
    current: float | Decimal
    previous: float | Decimal
    currency: str = ""  # money KPIs only

    @property
    def relative(self) -> float | None:
        if not self.previous:
            return None
        return float((Decimal(self.current) - Decimal(self.previous)) / Decimal(self.previous))

    @property
    def direction(self) -> int:
        if self.current > self.previous:
            return UP
        return DOWN if self.current < self.previous else FLAT

    @property
    def favourable(self) -> bool:
        if self.direction == FLAT:
            return False
        return (self.direction == UP) != (self.kpi in LOWER_IS_BETTER)
