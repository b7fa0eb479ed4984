"""Which scoring model a tenant uses, read per transaction, parsed once per version.

The active version is the tenant's highest (0 = the built-in model when it has none). It is
read inside each transaction after the leads' rows are locked: a rescoring job that already
moved a lead to a new version committed that version first, so a later change of the same
lead sees it and never writes an older version's score over the job's work. Versions never
change once stored, so parsed models are cached by (tenant, version).
"""

from __future__ import annotations

import asyncpg

from leadflow_scoring.api import mapping
from leadflow_scoring.db import repository as repo
from leadflow_scoring.domain.model import DEFAULT_MODEL, ScoringModel

_CACHE_LIMIT = 10_000


class ModelStore:
    def __init__(self) -> None:
        self._cache: dict[tuple[str, int], ScoringModel] = {}

    async def active(self, conn: asyncpg.Connection, tenant_id: str) -> ScoringModel:
        version = await repo.active_version(conn, tenant_id)
        model = await self.version(conn, tenant_id, version)
        assert model is not None  # the active version exists by definition
        return model

    async def version(
        self, conn: asyncpg.Connection, tenant_id: str, version: int
    ) -> ScoringModel | None:
        if version == 0:
            return DEFAULT_MODEL
        key = (tenant_id, version)
        cached = self._cache.get(key)
        if cached is not None:
            return cached
        row = await repo.model_row(conn, tenant_id, version)
        if row is None:
            return None
        model = mapping.model_from_json(row["model"], version, row["created_at"])
        if len(self._cache) >= _CACHE_LIMIT:
            self._cache.clear()
        self._cache[key] = model
        return model
