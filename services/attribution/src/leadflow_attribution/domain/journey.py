"""Touchpoints, conversions, and the journey that leads to one conversion.

A journey (DESIGN.md §3) is the subject's touchpoints inside the lookback window before the
conversion, oldest first, ties in time ordered by event id. The service layer collects the
touchpoints of the subject and of every anonymous id aliased to it; this module only orders,
deduplicates and windows them, so the same events give the same journey whatever order and
however many times they arrived.
"""

from __future__ import annotations

import enum
from bisect import bisect_right
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal

from leadflow_attribution.domain.errors import InvalidInput, Violation

DIRECT_CHANNEL = "direct"
# Label of a touchpoint without a value in a dimension (proto: SummaryRow.dimension_value).
NONE_VALUE = "(none)"
MAX_ID_LENGTH = 100
# Money carries nanos: a conversion value has at most 9 fractional digits.
MAX_VALUE_EXPONENT = 9


@dataclass(frozen=True, slots=True)
class Touchpoint:
    """An ingest event that carried marketing context; `occurred_at` is timezone-aware."""

    event_id: str
    occurred_at: datetime
    channel: str
    source: str = ""
    medium: str = ""
    campaign: str = ""
    content: str = ""
    term: str = ""
    brand_id: str = ""


@dataclass(frozen=True, slots=True)
class Conversion:
    """A goal reached by a subject.

    `value` is in `currency` (ISO 4217); a conversion without a value has value 0 and
    currency "". `opportunity_at` is when the subject entered the `opportunity` stage (the
    service passes the latest entry at or before the conversion; None when it never did):
    it anchors the W-shaped model.
    """

    conversion_id: str
    subject: str
    type: str
    occurred_at: datetime
    value: Decimal = Decimal(0)
    currency: str = ""
    opportunity_at: datetime | None = None


class TouchRole(enum.IntEnum):
    """Numbered as leadflow.attribution.v1.TouchRole."""

    FIRST = 1
    LAST = 2
    OPPORTUNITY = 3
    MIDDLE = 4


def _is_aware(moment: datetime) -> bool:
    return moment.tzinfo is not None and moment.utcoffset() is not None


def touchpoint_violations(touchpoint: Touchpoint, field: str = "touchpoint") -> list[Violation]:
    """What is wrong with one touchpoint; empty when it is usable."""
    found: list[Violation] = []
    if not touchpoint.event_id or len(touchpoint.event_id) > MAX_ID_LENGTH:
        found.append(
            Violation(
                f"{field}.event_id",
                "INVALID_ID",
                f"must be 1 to {MAX_ID_LENGTH} characters",
            )
        )
    if not _is_aware(touchpoint.occurred_at):
        found.append(Violation(f"{field}.occurred_at", "NAIVE_TIME", "must carry a time zone"))
    return found


def is_currency_code(code: str) -> bool:
    """Shape of an ISO 4217 code (three upper-case ASCII letters); the list itself is not kept."""
    return len(code) == 3 and code.isascii() and code.isalpha() and code.isupper()


def value_violations(value: Decimal, currency: str, field: str = "value") -> list[Violation]:
    """A conversion value must be finite, >= 0, at most nano-precise, and carry a currency."""
    found: list[Violation] = []
    if not value.is_finite():
        return [Violation(f"{field}.units", "INVALID_VALUE", "must be a finite number")]
    if value < 0:
        found.append(Violation(f"{field}.units", "INVALID_VALUE", "must not be negative"))
    exponent = value.as_tuple().exponent
    if isinstance(exponent, int) and -exponent > MAX_VALUE_EXPONENT:
        found.append(
            Violation(
                f"{field}.nanos",
                "INVALID_VALUE",
                f"at most {MAX_VALUE_EXPONENT} fractional digits",
            )
        )
    if (currency or value != 0) and not is_currency_code(currency):
        found.append(
            Violation(
                f"{field}.currency_code",
                "INVALID_CURRENCY",
                "must be an ISO 4217 code such as USD",
            )
        )
    return found


def conversion_violations(conversion: Conversion, field: str = "conversion") -> list[Violation]:
    """What is wrong with one conversion; empty when it is usable."""
    found: list[Violation] = []
    if not conversion.conversion_id or len(conversion.conversion_id) > MAX_ID_LENGTH:
        found.append(
            Violation(
                f"{field}.conversion_id",
                "INVALID_ID",
                f"must be 1 to {MAX_ID_LENGTH} characters",
            )
        )
    if not conversion.subject:
        found.append(Violation(f"{field}.subject", "REQUIRED", "a subject is required"))
    if not _is_aware(conversion.occurred_at):
        found.append(Violation(f"{field}.occurred_at", "NAIVE_TIME", "must carry a time zone"))
    if conversion.opportunity_at is not None and not _is_aware(conversion.opportunity_at):
        found.append(Violation(f"{field}.opportunity_at", "NAIVE_TIME", "must carry a time zone"))
    found.extend(value_violations(conversion.value, conversion.currency, f"{field}.value"))
    return found


def _copy_rank(t: Touchpoint) -> tuple[datetime, str, str, str, str, str, str, str]:
    # Which copy of a duplicated event id wins: the earliest, then the smallest fields, so
    # the choice never depends on arrival order.
    return (t.occurred_at, t.channel, t.source, t.medium, t.campaign, t.content, t.term, t.brand_id)


def _journey_order(t: Touchpoint) -> tuple[datetime, str]:
    return (t.occurred_at, t.event_id)


def build_journey(
    touchpoints: Iterable[Touchpoint], conversion: Conversion, lookback: timedelta
) -> tuple[Touchpoint, ...]:
    """The conversion's journey: touchpoints with `conversion - lookback <= t <= conversion`.

    Both ends are inclusive (a touchpoint at the conversion's instant counts, so does the
    conversion event itself when it carried marketing context). One touchpoint per event id:
    duplicates are removed before windowing, keeping the earliest copy. Ordered by
    (occurred_at, event_id); event ids compare as strings.
    """
    if lookback < timedelta(0):
        raise InvalidInput.of("options.lookback_window", "OUT_OF_RANGE", "must not be negative")
    end = conversion.occurred_at
    start = end - lookback
    return tuple(t for t in ordered_unique(touchpoints) if start <= t.occurred_at <= end)


def ordered_unique(touchpoints: Iterable[Touchpoint]) -> list[Touchpoint]:
    """One touchpoint per event id (the earliest copy), ordered by (occurred_at, event_id):
    the same list whatever order and however many times the events arrived."""
    unique: dict[str, Touchpoint] = {}
    for touchpoint in touchpoints:
        kept = unique.get(touchpoint.event_id)
        if kept is None or _copy_rank(touchpoint) < _copy_rank(kept):
            unique[touchpoint.event_id] = touchpoint
    return sorted(unique.values(), key=_journey_order)


def opportunity_index(
    journey: Sequence[Touchpoint], opportunity_at: datetime | None, converted_at: datetime
) -> int | None:
    """Position of the opportunity touch: the last touchpoint at or before `opportunity_at`.

    None when the subject never entered opportunity, entered it after this conversion (it
    played no part in this conversion), or before the journey's first touchpoint.
    """
    if opportunity_at is None or opportunity_at > converted_at:
        return None
    index = bisect_right(journey, opportunity_at, key=lambda t: t.occurred_at) - 1
    return index if index >= 0 else None


def touch_roles(length: int, opportunity: int | None) -> tuple[tuple[TouchRole, ...], ...]:
    """Roles of each position (proto ConversionTouchpoint.roles), in TouchRole order."""
    roles: list[tuple[TouchRole, ...]] = []
    for position in range(length):
        held: list[TouchRole] = []
        if position == 0:
            held.append(TouchRole.FIRST)
        if position == length - 1:
            held.append(TouchRole.LAST)
        if position == opportunity:
            held.append(TouchRole.OPPORTUNITY)
        roles.append(tuple(held) if held else (TouchRole.MIDDLE,))
    return tuple(roles)


def channel_label(channel: str) -> str:
    """The channel as the data-driven models and summaries name it ("(none)" when empty)."""
    return channel or NONE_VALUE


def channel_path(journey: Iterable[Touchpoint]) -> tuple[str, ...]:
    """The journey's channels in order: the path the data-driven models learn from."""
    return tuple(t.channel or NONE_VALUE for t in journey)
