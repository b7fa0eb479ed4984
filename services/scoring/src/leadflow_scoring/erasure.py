"""Erased subjects: their rows deleted, their ids kept only as keyed hashes so that events
still in the stream never bring them back, and the outbox and dead letters cleaned of them.
"""

from __future__ import annotations

from collections.abc import Iterable

import asyncpg
from google.protobuf.message import DecodeError, Message

from leadflow.ingest.v1 import events_pb2 as ingest_events
from leadflow_platform.erased import ErasedIdentifiers
from leadflow_platform.nats.registry import UnknownSubject, message_type
from leadflow_scoring.db import repository as repo


class ErasedSubjects:
    def __init__(self) -> None:
        self._erased = ErasedIdentifiers()

    async def blocked(
        self,
        conn: asyncpg.Connection,
        tenant_id: str,
        lead_ids: Iterable[str],
        anonymous_ids: Iterable[str],
    ) -> tuple[set[str], set[str]]:
        """The given ids that were erased: (lead ids, anonymous ids)."""
        leads = {f"lead:{i}": i for i in lead_ids if i}
        anons = {f"anon:{i}": i for i in anonymous_ids if i}
        found = await self._erased.erased(conn, tenant_id, [*leads, *anons])
        return {leads[k] for k in found if k in leads}, {anons[k] for k in found if k in anons}

    async def erase(
        self,
        conn: asyncpg.Connection,
        tenant_id: str,
        lead_ids: Iterable[str],
        anonymous_ids: Iterable[str],
    ) -> dict[str, int]:
        """Delete every row naming the person, block their ids, clean outbox and dead
        letters. Returns rows removed per table."""
        leads, anons = set(lead_ids), set(anonymous_ids)
        for anonymous_id, lead_id in await repo.aliases_touching(conn, tenant_id, leads, anons):
            leads.add(lead_id)
            anons.add(anonymous_id)
        await self._erased.remember(
            conn, tenant_id, [f"lead:{i}" for i in leads] + [f"anon:{i}" for i in anons]
        )
        counts = await repo.delete_subjects(conn, tenant_id, leads, anons)
        for table in ("outbox", "dead_letters"):
            counts[table] = await _clean(conn, table, tenant_id, leads, anons)
        return counts


async def _clean(
    conn: asyncpg.Connection, table: str, tenant_id: str, leads: set[str], anons: set[str]
) -> int:
    """Rows are found by a byte search and each is then decoded, so only messages that
    really name the person change: those of one subject go, batches lose its events."""
    needles = [i.encode() for i in sorted(leads | anons)]
    deleted: list[int] = []
    rewritten: list[tuple[int, bytes]] = []
    for row in await repo.rows_mentioning(conn, table, tenant_id, needles):
        payload = bytes(row["payload"])
        cleaned = _without(row["subject"], payload, leads, anons)
        if cleaned is None:
            deleted.append(row["id"])
        elif cleaned != payload:
            rewritten.append((row["id"], cleaned))
    await repo.rewrite_rows(conn, table, deleted, rewritten)
    return len(deleted) + len(rewritten)


def _without(subject: str, payload: bytes, leads: set[str], anons: set[str]) -> bytes | None:
    """The payload without the person; None when nothing is left of it."""
    try:
        message: Message = message_type(subject).FromString(payload)
    except (UnknownSubject, DecodeError):
        return None  # unreadable and mentioning the person: it goes
    if isinstance(message, ingest_events.EventsRecorded):
        kept = [
            e
            for e in message.events
            if e.subject.lead_id not in leads and e.subject.anonymous_id not in anons
        ]
        if not kept:
            return None
        if len(kept) == len(message.events):
            return payload
        del message.events[:]
        message.events.extend(kept)
        return message.SerializeToString()
    names: set[str] = set()
    for name in ("lead_id", "anonymous_id"):
        if name in message.DESCRIPTOR.fields_by_name:
            names.add(getattr(message, name))
    if "subject" in message.DESCRIPTOR.fields_by_name:
        ref = message.subject  # type: ignore[attr-defined]
        names.update((ref.lead_id, ref.anonymous_id))
    for name in ("lead_ids", "anonymous_ids"):
        if name in message.DESCRIPTOR.fields_by_name:
            names.update(getattr(message, name))
    names.discard("")
    return None if names & (leads | anons) else payload
