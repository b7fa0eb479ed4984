"""A tenant's attribution settings, with DESIGN.md's defaults (tenancy.tenants.settings).

Keys (all optional): `attribution_lookback_days` (90), `attribution_conversion_types`
(signup, purchase, opportunity, customer), `attribution_time_decay_half_life_days` (7),
`attribution_last_touch_ignore_direct` (false), `attribution_markov_order` (1),
`attribution_training_window_days` (90: the conversions the tenant's standing data-driven
fits learn from), and the suite-wide `retention_days` (365). Days may be fractional. A value
that cannot be used keeps its default and is reported, so one typo never stops attribution.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from typing import TypeVar

from leadflow_attribution.domain.conversion_rules import (
    DEFAULT_CONVERSION_TYPES,
    parse_conversion_types,
)
from leadflow_attribution.domain.models import (
    DEFAULT_HALF_LIFE,
    DEFAULT_LOOKBACK,
    DEFAULT_RETENTION,
    MAX_MARKOV_ORDER,
    MIN_HALF_LIFE,
    MIN_LOOKBACK,
    AttributionOptions,
)

LOOKBACK_KEY = "attribution_lookback_days"
CONVERSION_TYPES_KEY = "attribution_conversion_types"
HALF_LIFE_KEY = "attribution_time_decay_half_life_days"
IGNORE_DIRECT_KEY = "attribution_last_touch_ignore_direct"
MARKOV_ORDER_KEY = "attribution_markov_order"
TRAINING_WINDOW_KEY = "attribution_training_window_days"
RETENTION_KEY = "retention_days"
DEFAULT_TRAINING_WINDOW = timedelta(days=90)
# Python's timedelta tops out near 2.7 million days; anything near it is a typo anyway.
_MAX_DAYS = 100_000
T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class TenantPolicy:
    """What attribution applies to one tenant."""

    options: AttributionOptions = field(default_factory=AttributionOptions)
    conversion_types: frozenset[str] = DEFAULT_CONVERSION_TYPES
    retention: timedelta = DEFAULT_RETENTION
    training_window: timedelta = DEFAULT_TRAINING_WINDOW


def _days(raw: object) -> timedelta | None:
    if isinstance(raw, bool) or not isinstance(raw, int | float | str):
        return None
    try:
        days = float(raw)
    except ValueError:
        return None
    if not math.isfinite(days) or not 0 < days <= _MAX_DAYS:
        return None
    return timedelta(days=days)


def _flag(raw: object) -> bool | None:
    if isinstance(raw, bool):
        return raw
    if isinstance(raw, str) and raw.strip().lower() in {"true", "false", "1", "0", "yes", "no"}:
        return raw.strip().lower() in {"true", "1", "yes"}
    return None


def _order(raw: object) -> int | None:
    if isinstance(raw, bool):
        return None
    try:
        order = int(raw) if isinstance(raw, int | str) else None
    except ValueError:
        return None
    return order if order is not None and 1 <= order <= MAX_MARKOV_ORDER else None


def tenant_policy(settings: Mapping[str, object]) -> tuple[TenantPolicy, tuple[str, ...]]:
    """The tenant's policy and the keys whose values were ignored (defaults kept)."""
    ignored: list[str] = []

    def read(key: str, parse: Callable[[object], T | None], default: T) -> T:
        if settings.get(key) is None:
            return default
        value = parse(settings[key])
        if value is None:
            ignored.append(key)
            return default
        return value

    retention = read(RETENTION_KEY, _days, DEFAULT_RETENTION)
    lookback = read(LOOKBACK_KEY, _days, DEFAULT_LOOKBACK)
    if not MIN_LOOKBACK <= lookback <= retention:
        ignored.append(LOOKBACK_KEY)
        lookback = min(DEFAULT_LOOKBACK, retention)
    half_life = read(HALF_LIFE_KEY, _days, DEFAULT_HALF_LIFE)
    if half_life < MIN_HALF_LIFE:
        ignored.append(HALF_LIFE_KEY)
        half_life = DEFAULT_HALF_LIFE
    options = AttributionOptions(
        lookback_window=lookback,
        last_touch_ignore_direct=read(IGNORE_DIRECT_KEY, _flag, False),
        time_decay_half_life=half_life,
        markov_order=read(MARKOV_ORDER_KEY, _order, 1),
    )
    policy = TenantPolicy(
        options=options,
        conversion_types=read(
            CONVERSION_TYPES_KEY, parse_conversion_types, DEFAULT_CONVERSION_TYPES
        ),
        retention=retention,
        training_window=read(TRAINING_WINDOW_KEY, _days, DEFAULT_TRAINING_WINDOW),
    )
    return policy, tuple(ignored)
