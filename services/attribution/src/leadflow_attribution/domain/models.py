"""The eight attribution models and their options (proto: AttributionModel, AttributionOptions)."""

from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import timedelta

from leadflow_attribution.domain.errors import Violation


class AttributionModel(enum.IntEnum):
    """Numbered as in leadflow.attribution.v1.AttributionModel, so mapping is a cast."""

    FIRST_TOUCH = 1
    LAST_TOUCH = 2
    LINEAR = 3
    TIME_DECAY = 4
    U_SHAPED = 5
    W_SHAPED = 6
    MARKOV = 7
    SHAPLEY = 8

    @property
    def data_driven(self) -> bool:
        return self >= AttributionModel.MARKOV


HEURISTIC_MODELS = tuple(m for m in AttributionModel if not m.data_driven)
DATA_DRIVEN_MODELS = (AttributionModel.MARKOV, AttributionModel.SHAPLEY)

DEFAULT_LOOKBACK = timedelta(days=90)
DEFAULT_HALF_LIFE = timedelta(days=7)
DEFAULT_RETENTION = timedelta(days=365)
MIN_LOOKBACK = timedelta(hours=1)
MIN_HALF_LIFE = timedelta(minutes=1)
MAX_MARKOV_ORDER = 4


@dataclass(frozen=True, slots=True)
class AttributionOptions:
    """Model parameters with DESIGN.md §3 defaults; every field always set."""

    lookback_window: timedelta = DEFAULT_LOOKBACK
    last_touch_ignore_direct: bool = False
    time_decay_half_life: timedelta = DEFAULT_HALF_LIFE
    markov_order: int = 1

    def violations(self, retention: timedelta = DEFAULT_RETENTION) -> tuple[Violation, ...]:
        """Every rule the options break, with the proto field path (`options.<field>`)."""
        found: list[Violation] = []
        if not MIN_LOOKBACK <= self.lookback_window <= retention:
            found.append(
                Violation(
                    "options.lookback_window",
                    "OUT_OF_RANGE",
                    f"must be between {MIN_LOOKBACK} and the retention ({retention})",
                )
            )
        if self.time_decay_half_life < MIN_HALF_LIFE:
            found.append(
                Violation(
                    "options.time_decay_half_life",
                    "OUT_OF_RANGE",
                    f"must be at least {MIN_HALF_LIFE}",
                )
            )
        if not 1 <= self.markov_order <= MAX_MARKOV_ORDER:
            found.append(
                Violation(
                    "options.markov_order",
                    "OUT_OF_RANGE",
                    f"must be between 1 and {MAX_MARKOV_ORDER}",
                )
            )
        return tuple(found)
