"""Outbox reconciliation: the outbox is the record of what was published; when the stream has
lost messages (deleted and recreated, purged, restored from an older backup), publish them
again.

The relay records the stream sequence of every row it publishes. A published row is lost
when its sequence is beyond the stream's last sequence (the stream restarted from scratch),
or before the stream's first sequence although the stream's age limit would still keep it
(purged). Such rows are marked unpublished, and the relay sends them again under the same
Nats-Msg-Id, so consumers that already applied them skip them through their inbox. (Rows
cleared after publishing, erasure events, cannot be sent again: they name an erased person.)
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import asyncpg
from nats.js.errors import NotFoundError

from leadflow_platform.logging import get_logger
from leadflow_platform.nats.bus import Bus
from leadflow_platform.nats.streams import StreamSpec

log = get_logger(__name__)


async def reconcile_outbox(
    pool: asyncpg.Pool, bus: Bus, stream: StreamSpec, *, now: datetime | None = None
) -> int:
    """Mark the rows the stream lost as unpublished; returns how many."""
    checked_at = await pool.fetchval("SELECT now()")  # rows published later are not judged
    try:
        info = await bus.js.stream_info(bus.stream_name(stream.name))
    except NotFoundError:
        first_seq, last_seq = 1, 0  # the stream is gone: everything kept must go again
    else:
        first_seq, last_seq = info.state.first_seq, info.state.last_seq
    kept_since = (now or datetime.now(UTC)) - timedelta(seconds=bus.limits.max_age_seconds)
    status = await pool.execute(
        "UPDATE outbox SET published_at = NULL, stream_sequence = NULL,"
        " last_error = 'republished: the stream lost it'"
        " WHERE published_at IS NOT NULL AND published_at < $4 AND NOT redact_after_publish"
        " AND (stream_sequence > $1 OR (stream_sequence < $2 AND published_at > $3))",
        last_seq,
        first_seq,
        kept_since,
        checked_at,
    )
    lost = int(status.split()[-1])
    if lost:
        log.warning("outbox_reconciled", stream=stream.name, republishing=lost)
        await pool.execute("SELECT pg_notify('leadflow_outbox_' || current_schema(), '')")
    return lost
