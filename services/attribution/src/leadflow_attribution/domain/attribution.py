"""One conversion attributed under several models: its journey, the opportunity touch, the
role of each touchpoint, and exact credits per model (what GetAttribution answers and what
ConversionAttributed carries).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from leadflow_attribution.domain.channel_weights import shares_from_channel_weights
from leadflow_attribution.domain.credit import Credit, allocate
from leadflow_attribution.domain.currency import currency_exponent
from leadflow_attribution.domain.heuristics import Shares, heuristic_shares
from leadflow_attribution.domain.journey import (
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


def attribute_journey(
    journey: tuple[Touchpoint, ...],
    conversion: Conversion,
    options: AttributionOptions,
    models: Sequence[AttributionModel] = HEURISTIC_MODELS,
    channel_weights: Mapping[AttributionModel, ChannelWeights] | None = None,
) -> ConversionAttribution:
    """Credits of `conversion` over a journey already built (build_journey)."""
    exponent = currency_exponent(conversion.currency) if conversion.currency else 0
    credits = {
        model: tuple(
            allocate(
                model_shares(model, journey, conversion, options, channel_weights),
                conversion.value,
                exponent,
            )
        )
        for model in models
    }
    anchor = opportunity_index(journey, conversion.opportunity_at, conversion.occurred_at)
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
