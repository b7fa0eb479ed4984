"""One conversion attributed under several models: its journey, the opportunity touch, the
role of each touchpoint, and exact credits per model (what GetAttribution answers and what
ConversionAttributed carries).
"""

from __future__ import annotations

import hashlib
from collections.abc import Hashable, Iterable, Mapping, Sequence
from dataclasses import dataclass

from leadflow_attribution.domain.channel_weights import (
    channel_weight_numerators,
    shares_from_channel_weights,
)
from leadflow_attribution.domain.credit import Credit, allocate, allocate_numerators
from leadflow_attribution.domain.currency import currency_exponent
from leadflow_attribution.domain.heuristics import Shares, heuristic_shares
from leadflow_attribution.domain.journey import (
    DIRECT_CHANNEL,
    Conversion,
    Touchpoint,
    TouchRole,
    build_journey,
    channel_path,
    opportunity_index,
    touch_roles,
)
from leadflow_attribution.domain.models import (
    HEURISTIC_MODELS,
    AttributionModel,
    AttributionOptions,
)

ChannelWeights = Mapping[str, float]


@dataclass(frozen=True, slots=True)
class ConversionAttribution:
    """A conversion's journey and one credit per journey position under each model."""

    conversion: Conversion
    journey: tuple[Touchpoint, ...]
    opportunity: int | None  # position of the opportunity touch (W-shaped anchor)
    credits: Mapping[AttributionModel, tuple[Credit, ...]]

    def roles(self) -> tuple[tuple[TouchRole, ...], ...]:
        """Roles per position (proto ConversionTouchpoint.roles)."""
        return touch_roles(len(self.journey), self.opportunity)


def model_shares(
    model: AttributionModel,
    journey: Sequence[Touchpoint],
    conversion: Conversion,
    options: AttributionOptions,
    channel_weights: Mapping[AttributionModel, ChannelWeights] | None = None,
) -> Shares:
    """Exact shares per journey position under `model`; a data-driven model needs the
    channel weights of its fit (proto AttributionModel.SHAPLEY explains how they apply)."""
    if not model.data_driven:
        return heuristic_shares(model, journey, conversion, options)
    weights = (channel_weights or {}).get(model)
    if weights is None:
        raise ValueError(f"{model.name} needs the channel weights of a fit")
    return shares_from_channel_weights(channel_path(journey), weights)


# Every model but time decay gives the same credits to every journey of one shape (length,
# anchor, last non-direct position, channel path for a fit) and the same value: the exact
# allocation is computed once per (shape, value, currency unit) and shared (credits are
# immutable). Bounded: cleared when full.
_SHAPES: dict[Hashable, tuple[Credit, ...]] = {}
_MAX_SHAPES = 200_000


def _shape(
    model: AttributionModel,
    journey: Sequence[Touchpoint],
    anchor: int | None,
    options: AttributionOptions,
    fits: Mapping[AttributionModel, Hashable],
) -> Hashable | None:
    length = len(journey)
    if model in (AttributionModel.FIRST_TOUCH, AttributionModel.LINEAR, AttributionModel.U_SHAPED):
        return (model, length)
    if model is AttributionModel.W_SHAPED:
        return (model, length, anchor)
    if model is AttributionModel.LAST_TOUCH:
        if not options.last_touch_ignore_direct:
            return (model, length)
        return (model, tuple(t.channel.lower() == DIRECT_CHANNEL for t in journey))
    if model.data_driven and model in fits:
        return (model, channel_path(journey), fits[model])
    return None


def attribute_journey(
    journey: tuple[Touchpoint, ...],
    conversion: Conversion,
    options: AttributionOptions,
    models: Sequence[AttributionModel] = HEURISTIC_MODELS,
    channel_weights: Mapping[AttributionModel, ChannelWeights] | None = None,
) -> ConversionAttribution:
    """Credits of `conversion` over a journey already built (build_journey)."""
    exponent = currency_exponent(conversion.currency) if conversion.currency else 0
    anchor = opportunity_index(journey, conversion.opportunity_at, conversion.occurred_at)
    fits: dict[AttributionModel, Hashable] = {
        model: tuple(sorted(weights.items())) for model, weights in (channel_weights or {}).items()
    }
    credits: dict[AttributionModel, tuple[Credit, ...]] = {}
    for model in models:
        shape = _shape(model, journey, anchor, options, fits)
        key = (shape, conversion.value, exponent)
        found = _SHAPES.get(key) if shape is not None else None
        if found is None:
            if model.data_driven and channel_weights and model in channel_weights:
                numerators = channel_weight_numerators(
                    channel_path(journey), channel_weights[model]
                )
                found = tuple(
                    allocate_numerators(numerators, sum(numerators), conversion.value, exponent)
                )
            else:
                found = tuple(
                    allocate(
                        model_shares(model, journey, conversion, options, channel_weights),
                        conversion.value,
                        exponent,
                    )
                )
            if shape is not None:
                if len(_SHAPES) >= _MAX_SHAPES:
                    _SHAPES.clear()
                _SHAPES[key] = found
        credits[model] = found
    return ConversionAttribution(conversion, journey, anchor, credits)


def attribute(
    touchpoints: Iterable[Touchpoint],
    conversion: Conversion,
    options: AttributionOptions,
    models: Sequence[AttributionModel] = HEURISTIC_MODELS,
    channel_weights: Mapping[AttributionModel, ChannelWeights] | None = None,
) -> ConversionAttribution:
    """Build the conversion's journey from the subject's touchpoints (any order, duplicates
    allowed) and credit it under `models`."""
    journey = build_journey(touchpoints, conversion, options.lookback_window)
    return attribute_journey(journey, conversion, options, models, channel_weights)


def credits_digest(result: ConversionAttribution) -> bytes:
    """Fingerprint of the journey and every credit: equal digests, equal attribution (so a
    re-attribution that changes nothing publishes nothing)."""
    digest = hashlib.sha256()
    for touchpoint in result.journey:
        digest.update(touchpoint.event_id.encode())
        digest.update(b"\x1f")
    for model in sorted(result.credits):
        digest.update(b"\x1e%d" % model)
        for credit in result.credits[model]:
            digest.update(f"{credit.share:f}|{credit.value:f}\x1f".encode())
    return digest.digest()
