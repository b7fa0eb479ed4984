"""One conversion attributed under several models: its journey, the opportunity touch, the
role of each touchpoint, and exact credits per model (what GetAttribution answers and what
ConversionAttributed carries).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import timedelta

from leadflow_attribution.domain.batch import (
    BatchCredits,
    credit_batch,
    journeys_batch,
    journeys_from_columns,
)
from leadflow_attribution.domain.channel_weights import shares_from_channel_weights
from leadflow_attribution.domain.columns import encode_conversions, encode_touchpoints
from leadflow_attribution.domain.credit import Credit
from leadflow_attribution.domain.errors import InvalidInput
from leadflow_attribution.domain.heuristics import Shares, heuristic_shares
from leadflow_attribution.domain.journey import (
    Conversion,
    Touchpoint,
    TouchRole,
    build_journey,
    channel_path,
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


def attribute_journeys(
    journeys: Sequence[tuple[Touchpoint, ...]],
    conversions: Sequence[Conversion],
    options: AttributionOptions,
    models: Sequence[AttributionModel] = HEURISTIC_MODELS,
    channel_weights: Mapping[AttributionModel, ChannelWeights] | None = None,
) -> list[ConversionAttribution]:
    """Credits of each conversion over its journey, already built (build_journey)."""
    if not conversions:
        return []
    batch = journeys_batch(journeys, conversions)
    credited = credit_batch(batch, options, models, channel_weights)
    return _results(credited, list(journeys), conversions, batch.anchors.tolist(), models)


def attribute_journey(
    journey: tuple[Touchpoint, ...],
    conversion: Conversion,
    options: AttributionOptions,
    models: Sequence[AttributionModel] = HEURISTIC_MODELS,
    channel_weights: Mapping[AttributionModel, ChannelWeights] | None = None,
) -> ConversionAttribution:
    """Credits of `conversion` over a journey already built (build_journey)."""
    return attribute_journeys([journey], [conversion], options, models, channel_weights)[0]


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


def attribute_many(
    touchpoints_by_subject: Mapping[str, Iterable[Touchpoint]],
    conversions: Sequence[Conversion],
    options: AttributionOptions,
    models: Sequence[AttributionModel] = HEURISTIC_MODELS,
    channel_weights: Mapping[AttributionModel, ChannelWeights] | None = None,
) -> list[ConversionAttribution]:
    """attribute() for many conversions at once, over columns: each conversion's journey
    from its subject's touchpoints (`conversion.subject` keys the mapping)."""
    if options.lookback_window < timedelta(0):
        raise InvalidInput.of("options.lookback_window", "OUT_OF_RANGE", "must not be negative")
    if not conversions:
        return []
    touches = encode_touchpoints(touchpoints_by_subject)
    batch, rows = journeys_from_columns(
        touches,
        encode_conversions(conversions, touches.subject_index()),
        options.lookback_window,
    )
    credited = credit_batch(batch, options, models, channel_weights)
    objects = touches.touchpoints or ()
    bounds = batch.offsets.tolist()
    flat = rows.tolist()
    journeys = [
        tuple(objects[r] for r in flat[bounds[i] : bounds[i + 1]]) for i in range(batch.size)
    ]
    return _results(credited, journeys, conversions, batch.anchors.tolist(), models)


def _results(
    credited: BatchCredits,
    journeys: list[tuple[Touchpoint, ...]],
    conversions: Sequence[Conversion],
    anchors: list[int],
    models: Sequence[AttributionModel],
) -> list[ConversionAttribution]:
    return [
        ConversionAttribution(
            conversion,
            journey,
            anchor if anchor >= 0 else None,
            {model: credited.credits(i, model) for model in models},
        )
        for i, (journey, conversion, anchor) in enumerate(
            zip(journeys, conversions, anchors, strict=True)
        )
    ]


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
