"""Protobuf <-> domain for attribution: money, times, options, conversions, touchpoints,
credits and fits as the wire carries them."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from google.protobuf import duration_pb2, timestamp_pb2

from leadflow.attribution.v1 import attribution_types_pb2 as types
from leadflow.common.v1 import event_type_pb2, money_pb2, subject_pb2
from leadflow_attribution.db.fits import FitRow
from leadflow_attribution.db.repository import ConversionRow, StageChangeRow, TouchpointRow
from leadflow_attribution.domain.credit import Credit
from leadflow_attribution.domain.errors import Violation
from leadflow_attribution.domain.journey import TouchRole
from leadflow_attribution.domain.models import AttributionOptions

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICRO = timedelta(microseconds=1)
_NANO = Decimal(10) ** 9
MAX_UNITS = 2**63 - 1

# EVENT_TYPE_PAGE_VIEW -> "page_view": the short names conversion types use.
EVENT_TYPE_NAMES: dict[int, str] = {
    value: name.removeprefix("EVENT_TYPE_").lower()
    for name, value in event_type_pb2.EventType.items()
    if value != event_type_pb2.EVENT_TYPE_UNSPECIFIED
}


# Times ----------------------------------------------------------------------------------


def to_datetime(ts: timestamp_pb2.Timestamp) -> datetime:
    return _EPOCH + timedelta(seconds=ts.seconds, microseconds=ts.nanos // 1000)


def set_timestamp(target: timestamp_pb2.Timestamp, value: datetime) -> None:
    target.seconds, rest = divmod((value - _EPOCH) // _MICRO, 1_000_000)
    target.nanos = rest * 1000


def to_timedelta(d: duration_pb2.Duration) -> timedelta:
    return timedelta(seconds=d.seconds, microseconds=d.nanos // 1000)


def set_duration(target: duration_pb2.Duration, value: timedelta) -> None:
    total = value // _MICRO
    seconds, rest = divmod(total, 1_000_000)
    target.seconds = seconds
    target.nanos = rest * 1000


# Money ----------------------------------------------------------------------------------


def to_decimal(money: money_pb2.Money) -> Decimal:
    """Exact value of a Money, without trailing zeros (so 12.50 splits in cents, not nanos)."""
    value = (Decimal(money.units) * _NANO + Decimal(money.nanos)).scaleb(-9).normalize()
    exponent = value.as_tuple().exponent
    if isinstance(exponent, int) and exponent > 0:
        value = value.quantize(Decimal(1))
    return value


def money_violations(money: money_pb2.Money, field: str) -> list[Violation]:
    found: list[Violation] = []
    if not -999_999_999 <= money.nanos <= 999_999_999 or (
        money.units and money.nanos and (money.units > 0) != (money.nanos > 0)
    ):
        found.append(Violation(f"{field}.nanos", "INVALID_VALUE", "nanos out of range or sign"))
    return found


def set_money(target: money_pb2.Money, value: Decimal, currency: str) -> None:
    nanos_total = int(value * _NANO)
    units, nanos = divmod(abs(nanos_total), 10**9)
    sign = -1 if nanos_total < 0 else 1
    target.currency_code = currency
    target.units = sign * units
    target.nanos = sign * nanos


def money(value: Decimal, currency: str) -> money_pb2.Money:
    m = money_pb2.Money()
    set_money(m, value, currency)
    return m


def amounts(values: Mapping[str, Decimal]) -> list[money_pb2.Money]:
    return [money(values[code], code) for code in sorted(values)]


# Options --------------------------------------------------------------------------------


def options_from_proto(
    message: types.AttributionOptions, defaults: AttributionOptions
) -> AttributionOptions:
    """The request's options over the tenant's defaults (ranges are checked by
    AttributionOptions.violations)."""
    lookback = defaults.lookback_window
    if message.HasField("lookback_window"):
        lookback = to_timedelta(message.lookback_window)
    half_life = defaults.time_decay_half_life
    if message.HasField("time_decay_half_life"):
        half_life = to_timedelta(message.time_decay_half_life)
    ignore_direct = defaults.last_touch_ignore_direct
    if message.HasField("last_touch_ignore_direct"):
        ignore_direct = message.last_touch_ignore_direct
    order = defaults.markov_order
    if message.HasField("markov_order"):
        order = message.markov_order
    return AttributionOptions(lookback, ignore_direct, half_life, order)


def set_options(target: types.AttributionOptions, options: AttributionOptions) -> None:
    set_duration(target.lookback_window, options.lookback_window)
    target.last_touch_ignore_direct = options.last_touch_ignore_direct
    set_duration(target.time_decay_half_life, options.time_decay_half_life)
    target.markov_order = options.markov_order


# Entities -------------------------------------------------------------------------------


def set_conversion(target: types.Conversion, row: ConversionRow) -> None:
    c = row.conversion
    target.conversion_id = c.conversion_id
    target.subject.CopyFrom(
        subject_pb2.SubjectRef(lead_id=row.lead_id, anonymous_id=row.anonymous_id)
    )
    target.conversion_type = c.type
    set_timestamp(target.occurred_at, c.occurred_at)
    if c.currency:
        set_money(target.value, c.value, c.currency)
    target.brand_id = row.brand_id
    target.source_event_id = row.source_event_id


def set_touchpoint(target: types.Touchpoint, row: TouchpointRow) -> None:
    t = row.touchpoint
    target.event_id = t.event_id
    set_timestamp(target.occurred_at, t.occurred_at)
    m = target.marketing
    m.channel, m.source, m.medium = t.channel, t.source, t.medium
    m.campaign, m.content, m.term = t.campaign, t.content, t.term
    target.brand_id = t.brand_id
    target.event_type = row.event_type  # type: ignore[assignment]
    target.event_name = row.event_name
    target.session_id = row.session_id


def add_journey(
    target: Any,
    rows: Sequence[TouchpointRow],
    roles: Sequence[Sequence[TouchRole]],
) -> None:
    """Append ConversionTouchpoints (positions, roles, touchpoints) to a repeated field."""
    for position, (row, held) in enumerate(zip(rows, roles, strict=True)):
        entry = target.add()
        entry.position = position
        entry.roles.extend(int(r) for r in held)
        set_touchpoint(entry.touchpoint, row)


def set_credits(
    target: types.ModelAttribution,
    event_ids: Sequence[str],
    credits: Sequence[Credit],
    currency: str,
) -> None:
    for position, (event_id, credit) in enumerate(zip(event_ids, credits, strict=True)):
        entry = target.credits.add()
        entry.position = position
        entry.event_id = event_id
        entry.share = float(credit.share)
        entry.share_decimal = format(credit.share, "f")
        if currency:
            set_money(entry.credited_value, credit.value, currency)


def set_fit(target: types.DataDrivenFit, fit: FitRow, current_generation: int) -> None:
    if fit.computed_at is not None:
        set_timestamp(target.computed_at, fit.computed_at)
    if fit.training_start is not None and fit.training_end is not None:
        set_timestamp(target.training_range.start_time, fit.training_start)
        set_timestamp(target.training_range.end_time, fit.training_end)
    if fit.data_through is not None:
        set_timestamp(target.data_through, fit.data_through)
    target.stale = fit.generation is not None and fit.generation < current_generation
    target.journey_count = fit.journey_count
    target.converting_journey_count = fit.converting_journey_count
    target.channel_count = fit.channel_count
    target.markov_order = fit.key.markov_order
    target.exact = fit.exact
    target.sample_count = fit.sample_count
    target.error_bound = fit.error_bound
    target.error_confidence = fit.error_confidence


def set_stage_change(target: types.StageChange, row: StageChangeRow) -> None:
    target.event_id = row.event_id
    set_timestamp(target.occurred_at, row.occurred_at)
    target.from_stage = row.from_stage  # type: ignore[assignment]
    target.to_stage = row.to_stage  # type: ignore[assignment]
    target.reason = row.reason
