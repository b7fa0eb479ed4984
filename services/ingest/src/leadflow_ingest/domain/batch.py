"""Batch-level rules: size of a batch, duplicates inside it, bus messages under a byte limit."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol, TypeVar

from leadflow_ingest.domain.model import DEFAULT_LIMITS, Limits, Violation, ViolationCode


class _HasEventId(Protocol):
    @property
    def index(self) -> int: ...
    @property
    def event_id(self) -> str: ...


E = TypeVar("E", bound=_HasEventId)


def validate_batch_size(count: int, limits: Limits = DEFAULT_LIMITS) -> list[Violation]:
    """A batch holds 1 to `max_batch_events` events (the whole batch is refused otherwise,
    naming "events"). Its byte size is checked by the server before the message is read."""
    if count < 1:
        return [Violation("events", ViolationCode.FIELD_REQUIRED, "a batch needs events")]
    if count > limits.max_batch_events:
        return [
            Violation(
                "events",
                ViolationCode.INVALID_VALUE,
                f"{count} events, the limit is {limits.max_batch_events} per batch",
            )
        ]
    return []


def dedupe_within_batch(events: Sequence[E]) -> tuple[list[E], list[int]]:
    """The events whose id is the first of its kind in the batch (in order), and the
    `index` of every later event with an id seen before (DUPLICATE). Events without an id
    (the server generates one) are never duplicates.

    Run it on the events that passed validation, so that a rejected first copy does not
    make a good second copy a duplicate.
    """
    seen: set[str] = set()
    first: list[E] = []
    duplicates: list[int] = []
    for event in events:
        event_id = event.event_id
        if not event_id:
            first.append(event)
        elif event_id in seen:
            duplicates.append(event.index)
        else:
            seen.add(event_id)
            first.append(event)
    return first, duplicates


def framed_size(size: int) -> int:
    """Bytes of a message of `size` bytes as one element of a repeated message field with a
    field number below 16 (one tag byte, the varint length, the message)."""
    return 1 + _varint_len(size) + size


def split_for_publishing(
    sizes: Sequence[int],
    max_bytes: int,
    *,
    envelope_bytes: int = 0,
    framed: bool = False,
) -> list[range]:
    """Consecutive chunks of the events (as ranges of positions) whose sizes sum to at most
    `max_bytes` each, greedily, in order; a single event larger than that is a chunk alone
    (it cannot be split, the publisher decides).

    envelope_bytes: fixed bytes of each message besides the events (metadata).
    framed: count each size as an element of a repeated field (`framed_size`), so that
        the chunk sums are exactly the serialized size of e.g. EventsRecorded.events.
    """
    if max_bytes <= 0:
        raise ValueError("max_bytes must be positive")
    chunks: list[range] = []
    start = 0
    total = envelope_bytes
    for position, size in enumerate(sizes):
        cost = framed_size(size) if framed else size
        if position > start and total + cost > max_bytes:
            chunks.append(range(start, position))
            start = position
            total = envelope_bytes
        total += cost
    if start < len(sizes):
        chunks.append(range(start, len(sizes)))
    return chunks


def _varint_len(value: int) -> int:
    length = 1
    while value >= 0x80:
        value >>= 7
        length += 1
    return length
