"""Erasure (ingest.subject.erased): every row naming the person goes (touchpoints,
conversions and their credits, stage changes, aliases), the ConversionAttributed events of
their conversions leave the outbox, dead letters naming them are dropped, and their ids are
kept only as keyed hashes so that input still in flight never brings them back."""

from __future__ import annotations

from collections.abc import Iterable

import asyncpg

from leadflow_attribution.db import repository as repo
from leadflow_attribution.events.published import message_id
from leadflow_platform.erased import ErasedIdentifiers
from leadflow_platform.logging import get_logger

log = get_logger(__name__)


class Erasure:
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
        leads = {repo.lead_key(i): i for i in lead_ids if i}
        anons = {repo.anon_key(i): i for i in anonymous_ids if i}
        found = await self._erased.erased(conn, tenant_id, [*leads, *anons])
        return {leads[k] for k in found if k in leads}, {anons[k] for k in found if k in anons}

    async def erase(
        self,
        conn: asyncpg.Connection,
        tenant_id: str,
        lead_ids: Iterable[str],
        anonymous_ids: Iterable[str],
    ) -> dict[str, int]:
        """Delete the person's rows; returns rows removed per table."""
        leads, anons = {i for i in lead_ids if i}, {i for i in anonymous_ids if i}
        if not leads and not anons:
            return {}
        await repo.close_person(conn, tenant_id, leads, anons)
        await repo.lock_subjects(
            conn,
            tenant_id,
            [repo.lead_key(i) for i in leads] + [repo.anon_key(i) for i in anons],
        )
        await self._erased.remember(
            conn, tenant_id, [repo.lead_key(i) for i in leads] + [repo.anon_key(i) for i in anons]
        )
        counts, gone = await repo.delete_person(conn, tenant_id, sorted(leads), sorted(anons))
        counts["outbox"] = await repo.delete_outbox_messages(
            conn,
            tenant_id,
            [
                message_id(tenant_id, conversion_id, revision)
                for conversion_id, revision in gone
                for revision in range(1, revision + 1)
            ],
        )
        needles = [i.encode() for i in leads | anons]
        dropped = [
            row_id
            for row_id, _subject, payload in await repo.dead_letters(conn, tenant_id)
            if any(n in payload for n in needles)
        ]
        await repo.delete_dead_letters(conn, dropped)
        counts["dead_letters"] = len(dropped)
        await repo.bump_generation(conn, tenant_id)
        log.info("subject_erased", tenant_id=tenant_id, **counts)
        return counts
