"""Stand-ins for the business answers the weekly report is assembled from (unit tests)."""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal


@dataclass
class Figures:
    brand_id: str
    new_leads: int = 0
    total_leads: int = 0
    active: int = 0
    conversions: int = 0
    converting: int = 0
    revenue: dict[str, Decimal] = field(default_factory=dict)
    routed_in: int = 0
    sla_breaches: int = 0
    hot_leads: int = 0

    @property
    def conversion_rate(self) -> float:
        return self.converting / self.active if self.active else 0.0


@dataclass
class RaisedAlert:
    kpi: int
    brand_id: str
    message: str
