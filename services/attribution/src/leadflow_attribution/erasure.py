"""Erasure (ingest.subject.erased): every row naming the person goes (touchpoints,
conversions and their credits, stage changes, aliases), the ConversionAttributed events of
their conversions leave the outbox, dead letters naming them are dropped, and their ids are
kept only as keyed hashes so that input still in flight never brings them back."""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Iterable

import asyncpg

from leadflow_attribution.db import repository as repo
from leadflow_attribution.events.published import message_id
from leadflow_platform.logging import get_logger

log = get_logger(__name__)


class Erasure:
    def __init__(self) -> None:
        self._secrets: dict[str, bytes] = {}

    async def _secret(self, conn: asyncpg.Connection, tenant_id: str) -> bytes:
        secret = self._secrets.get(tenant_id)
        if secret is None:
            secret, committed = await repo.tenant_secret(conn, tenant_id)
            if committed:  # one this transaction created could vanish with a rollback
                self._secrets[tenant_id] = secret
        return secret

    @staticmethod
    def _hash(secret: bytes, key: str) -> bytes:
        return hmac.new(secret, key.encode(), hashlib.sha256).digest()

    async def blocked(
        self,
        conn: asyncpg.Connection,
        tenant_id: str,
        lead_ids: Iterable[str],
        anonymous_ids: Iterable[str],
    ) -> tuple[set[str], set[str]]:
        """The given ids that were erased: (lead ids, anonymous ids)."""
        secret = await self._secret(conn, tenant_id)
        keys = {self._hash(secret, repo.lead_key(i)): ("lead", i) for i in lead_ids if i}
        keys.update({self._hash(secret, repo.anon_key(i)): ("anon", i) for i in anonymous_ids if i})
        found = await repo.erased_among(conn, tenant_id, list(keys))
        leads = {keys[h][1] for h in found if keys[h][0] == "lead"}
        anons = {keys[h][1] for h in found if keys[h][0] == "anon"}
        return leads, anons

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
        secret = await self._secret(conn, tenant_id)
        await repo.block_identifiers(
            conn,
            tenant_id,
            [self._hash(secret, repo.lead_key(i)) for i in sorted(leads)]
            + [self._hash(secret, repo.anon_key(i)) for i in sorted(anons)],
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
