"""The stored form of a lead's features and stage visit: compact JSON (a jsonb column).

Times are integer microseconds since the epoch and days are proleptic ordinals, so a value
read back is exactly the value written (floats round-trip through `repr`): two replicas that
load, change and store a lead agree to the bit. Keys are short because every change of a
lead rewrites its row; the layout is versioned by `v` so a later change can read old rows.
"""

from __future__ import annotations

import json
from datetime import UTC, date, datetime, timedelta
from types import MappingProxyType
from typing import Any

from leadflow_scoring.domain.features import (
    Activity,
    Consent,
    ConsentDecision,
    LeadFeatures,
    ProfileFacts,
    TypeTally,
)
from leadflow_scoring.domain.lifecycle import LifecycleStage, StageVisit

VERSION = 1
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICRO = timedelta(microseconds=1)
_dumps = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False).encode


_FAST_LIMIT = 4_000_000_000_000_000
"""Within this many microseconds of the epoch (1843..2096) a float number of seconds is
exact to well under half a microsecond, so fromtimestamp (which rounds to the microsecond)
gives back the exact time, three times faster than epoch + timedelta."""
_fromtimestamp = datetime.fromtimestamp


def micros(value: datetime) -> int:
    d = value - _EPOCH
    return (d.days * 86_400 + d.seconds) * 1_000_000 + d.microseconds


def from_micros(value: int) -> datetime:
    if -_FAST_LIMIT < value < _FAST_LIMIT:
        return _fromtimestamp(value / 1e6, UTC)
    return _EPOCH + timedelta(microseconds=value)


def _opt_micros(value: datetime | None) -> int | None:
    return None if value is None else micros(value)


def _opt_time(value: int | None) -> datetime | None:
    return None if value is None else from_micros(value)


# Features ------------------------------------------------------------------------------


def features_to_json(features: LeadFeatures) -> str:
    return _dumps(features_to_dict(features))


def features_to_dict(features: LeadFeatures) -> dict[str, Any]:
    p = features.profile
    a = features.activity
    c = features.consent
    return {
        "v": VERSION,
        "p": [
            sorted(p.present_fields),
            p.country,
            p.region,
            p.city,
            p.customer_type,
            p.lead_source,
            p.home_brand_id,
            _opt_micros(p.as_of),
        ],
        "c": [
            [c.email.granted, _opt_micros(c.email.decided_at)],
            [c.sms.granted, _opt_micros(c.sms.decided_at)],
        ],
        "s": features.stage.value,
        "a": [
            a.half_life // _MICRO,
            _opt_micros(a.anchor),
            {
                name: [t.count, t.decayed, [[micros(at), i] for at, i in t.recent]]
                for name, t in a.tallies.items()
            },
            [[day.toordinal(), micros(latest)] for day, latest in a.active_days],
            None
            if a.first_touch is None
            else [micros(a.first_touch[0]), a.first_touch[1], a.first_touch[2]],
        ],
    }


def features_from_json(stored: dict[str, Any] | str) -> LeadFeatures:
    data: Any = json.loads(stored) if isinstance(stored, str) else stored
    if data.get("v") != VERSION:
        raise ValueError(f"unknown features layout {data.get('v')!r}")
    p = data["p"]
    profile = ProfileFacts(frozenset(p[0]), p[1], p[2], p[3], p[4], p[5], p[6], _opt_time(p[7]))
    (email_granted, email_at), (sms_granted, sms_at) = data["c"]
    consent = Consent(
        ConsentDecision(email_granted, _opt_time(email_at)),
        ConsentDecision(sms_granted, _opt_time(sms_at)),
    )
    half_life, anchor, tallies, days, touch = data["a"]
    activity = Activity(
        timedelta(microseconds=half_life),
        _opt_time(anchor),
        MappingProxyType(
            {
                name: TypeTally(
                    count,
                    decayed,
                    tuple([(from_micros(at), i) for at, i in recent]),
                )
                for name, (count, decayed, recent) in tallies.items()
            }
        ),
        tuple([(date.fromordinal(day), from_micros(latest)) for day, latest in days]),
        None if touch is None else (from_micros(touch[0]), touch[1], touch[2]),
    )
    return LeadFeatures(profile, consent, LifecycleStage(data["s"]), activity)


# Stage visit ---------------------------------------------------------------------------


def touchpoints_to_json(visit: StageVisit) -> str:
    return _dumps([[micros(at), i] for at, i in visit.touchpoints])


def visit_from_row(
    stage: str,
    entered_at: datetime,
    touchpoints: list[list[Any]] | str,
    count: int,
    entered_by: str = "",
) -> StageVisit:
    items: Any = json.loads(touchpoints) if isinstance(touchpoints, str) else touchpoints
    return StageVisit(
        LifecycleStage(stage),
        entered_at,
        tuple([(from_micros(at), i) for at, i in items]),
        count,
        entered_by,
    )
