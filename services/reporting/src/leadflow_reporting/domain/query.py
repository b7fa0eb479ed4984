"""A funnel question as plain data: what selects each step's events, how the answer is
broken down. Built from the request by api/validation.py, turned into SQL by db/selection.py.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from leadflow_reporting.domain.funnel import ExclusionSpan, FunnelShape, Order

# Top-level fields of a recorded event a filter or breakdown may name (PROPERTY_SCOPE_FIELD),
# each a column of the read model.
EVENT_FIELDS = (
    "brand_id",
    "session_id",
    "page_url",
    "page_path",
    "referrer",
    "channel",
    "source",
    "medium",
    "campaign",
    "content",
    "term",
    "country",
    "region",
    "city",
)


class Operator(enum.Enum):
    EQUALS = "equals"
    NOT_EQUALS = "not_equals"
    CONTAINS = "contains"
    NOT_CONTAINS = "not_contains"
    REGEX = "regex"
    NOT_REGEX = "not_regex"
    GREATER_THAN = "gt"
    GREATER_THAN_OR_EQUAL = "gte"
    LESS_THAN = "lt"
    LESS_THAN_OR_EQUAL = "lte"
    IS_SET = "is_set"
    IS_NOT_SET = "is_not_set"


NUMERIC_OPERATORS = frozenset(
    {
        Operator.GREATER_THAN,
        Operator.GREATER_THAN_OR_EQUAL,
        Operator.LESS_THAN,
        Operator.LESS_THAN_OR_EQUAL,
    }
)
Scalar = str | float | bool | None


@dataclass(frozen=True)
class PropertyFilter:
    # "field": a column of EVENT_FIELDS; "event": a dotted path into the event's properties.
    scope: str
    key: str
    operator: Operator
    values: tuple[Scalar, ...] = ()


@dataclass(frozen=True)
class Selector:
    """Events of a standard type (custom_name empty) or a custom event by name."""

    event_type: int
    custom_name: str = ""
    filters: tuple[PropertyFilter, ...] = ()


@dataclass(frozen=True)
class Breakdown:
    # "field" (a column of EVENT_FIELDS), "event" (a properties path) or "event_type".
    scope: str
    key: str = ""


@dataclass(frozen=True)
class FunnelQuery:
    start_us: int  # microseconds since the Unix epoch, inclusive
    end_us: int  # exclusive
    steps: tuple[Selector, ...]
    labels: tuple[str, ...]
    window_us: int
    order: Order = Order.SEQUENTIAL
    exclusions: tuple[tuple[Selector, int, int], ...] = ()
    breakdown: Breakdown | None = None
    attribution: str = "first"  # first | last | specific
    attribution_step: int = 0
    breakdown_limit: int = 25
    brand_ids: tuple[str, ...] = ()

    @property
    def shape(self) -> FunnelShape:
        return FunnelShape(
            len(self.steps),
            self.window_us,
            self.order,
            tuple(ExclusionSpan(j, lo, hi) for j, (_, lo, hi) in enumerate(self.exclusions)),
        )


@dataclass(frozen=True)
class RealTimeQuery:
    start_us: int
    end_us: int
    bucket_minutes: int
    time_zone: str
    # Standard types counted (empty with count_all_types: every type).
    event_types: tuple[int, ...] = ()
    # Custom names counted (empty: every custom name, when custom events are counted).
    custom_names: tuple[str, ...] = ()
    brand_ids: tuple[str, ...] = ()
    now_us: int = 0
