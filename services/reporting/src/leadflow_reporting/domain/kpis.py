"""KPI changes of one period against the previous one of the same length."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

# leadflow.reporting.v1.Kpi values the reports compare.
LEADS, CONVERSIONS, CONVERSION_RATE, REVENUE = 1, 2, 3, 4
ACTIVE_SUBJECTS, HOT_LEADS, ROUTED_LEADS, SLA_BREACHES = 7, 12, 13, 14
BOUNCE_RATE = 9
LOWER_IS_BETTER = frozenset({BOUNCE_RATE, SLA_BREACHES})
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
