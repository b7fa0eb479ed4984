"""Which events and stage changes count as conversions (DESIGN.md §3; proto Conversion).

A tenant lists its conversion types by short name: an event type's short name ("signup",
"purchase"), a custom event's own name ("trial_started"), or a lifecycle stage
("opportunity", "customer"). The default is signup, purchase, opportunity and customer.
"""

from __future__ import annotations

from collections.abc import Iterable

DEFAULT_CONVERSION_TYPES: frozenset[str] = frozenset(
    {"signup", "purchase", "opportunity", "customer"}
)
CUSTOM_EVENT_TYPE = "custom"
MAX_TYPE_LENGTH = 100


def event_conversion_type(
    event_type: str, custom_name: str, conversion_types: frozenset[str]
) -> str | None:
    """The conversion type of an ingest event (`event_type` is the short name), or None
    when the tenant does not count it. A custom event is named by its custom name."""
    name = custom_name if event_type == CUSTOM_EVENT_TYPE else event_type
    return name if name and name in conversion_types else None


def stage_conversion_type(stage: str, conversion_types: frozenset[str]) -> str | None:
    """The conversion type of entering lifecycle `stage` (short name), or None."""
    return stage if stage and stage in conversion_types else None


def parse_conversion_types(raw: object) -> frozenset[str] | None:
    """A tenant setting as a set of names: a list of strings, or one comma-separated string.
    None when the value cannot be used (the caller keeps the default)."""
    if isinstance(raw, str):
        items: Iterable[object] = raw.split(",")
    elif isinstance(raw, list | tuple):
        items = raw
    else:
        return None
    names: set[str] = set()
    for item in items:
        if not isinstance(item, str):
            return None
        name = item.strip().lower()
        if not name or len(name) > MAX_TYPE_LENGTH:
            continue
        names.add(name)
    return frozenset(names) if names else None
