"""Funnel use cases: fetch the rows, run the engine, attach breakdown values and subjects.

Each answer reads one consistent snapshot (a read-only REPEATABLE READ transaction), so the
rows, the breakdown values and the subjects on a page agree with each other.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass

import asyncpg
import numpy as np

from leadflow_platform.errors import InvalidArgument
from leadflow_platform.lifecycle import ServiceContext
from leadflow_reporting.api.validation import EVENT_TYPE_NAMES
from leadflow_reporting.db import funnel_rows
from leadflow_reporting.db import repository as repo
from leadflow_reporting.domain.funnel import I64, Entries, enter
from leadflow_reporting.domain.funnel_stats import (
    Group,
    SeriesStats,
    attribution_rows,
    dropped,
    groups,
    series,
)
from leadflow_reporting.domain.query import FunnelQuery

DEFAULT_PAGE_SIZE = 50
MAX_PAGE_SIZE = 1000
# Drop-offs an export reads at a time.
DROP_OFF_BATCH = 2_000


@dataclass(frozen=True)
class FunnelAnswer:
    query: FunnelQuery
    overall: SeriesStats
    breakdown: list[tuple[Group, SeriesStats]]
    excluded_subjects: int


@dataclass(frozen=True)
class DropOff:
    subject: repo.SubjectInfo
    last_step_index: int
    last_step_time_us: int
    breakdown_value: str


@dataclass(frozen=True)
class DropOffPage:
    drop_offs: list[DropOff]
    total_count: int
    next_page_token: str


class Funnels:
    def __init__(self, context: ServiceContext) -> None:
        self._context = context

    async def _entries(
        self, conn: asyncpg.Connection, tenant_id: str, query: FunnelQuery
    ) -> tuple[Entries, list[str] | None]:
        try:
            rows, ids = await funnel_rows.fetch(
                conn,
                tenant_id,
                query,
                with_ids=query.breakdown is not None,
                pool=self._context.pool,
            )
        except asyncpg.InvalidRegularExpressionError as exc:
            raise InvalidArgument.field("funnel", f"a regex filter is not valid: {exc}") from None
        entries = enter(rows, query.shape)
        if query.breakdown is None or ids is None:
            return entries, None
        chosen = ids[attribution_rows(entries, query.attribution, query.attribution_step)]
        found = await funnel_rows.breakdown_values(conn, tenant_id, query, chosen)
        values = [found.get(i, "") for i in chosen.tolist()]
        if query.breakdown.scope == "event_type":
            values = [_event_type_name(v) for v in values]
        return entries, values

    async def run(self, tenant_id: str, query: FunnelQuery) -> FunnelAnswer:
        async with (
            self._context.pool.acquire() as conn,
            conn.transaction(isolation="repeatable_read", readonly=True),
        ):
            entries, values = await self._entries(conn, tenant_id, query)
        found = groups(values, query.breakdown_limit) if values is not None else []
        return FunnelAnswer(
            query,
            series(entries),
            [(g, series(entries, g.members)) for g in found],
            entries.excluded_subjects,
        )

    async def drop_offs(
        self,
        tenant_id: str,
        query: FunnelQuery,
        step_index: int,
        breakdown_value: str | None,
        page_size: int,
        page_token: str,
        fingerprint: str,
    ) -> DropOffPage:
        after = _decode_token(page_token, fingerprint) if page_token else None
        async with (
            self._context.pool.acquire() as conn,
            conn.transaction(isolation="repeatable_read", readonly=True),
        ):
            entries, values = await self._entries(conn, tenant_id, query)
            members: I64 | None = None
            if breakdown_value is not None and values is not None:
                members = np.flatnonzero(np.asarray(values, dtype=object) == breakdown_value)
            hit, when = dropped(entries, step_index, members)
            # Subjects sort by (last step time, subject id); ids are read only for the
            # stretch of the list this page can come from.
            # The stretch: every subject tied with the token's time, then page_size + 1 more
            # (and all tied with the last of them).
            start = int(np.searchsorted(when, after[0], side="left")) if after else 0
            ties = int(np.searchsorted(when, after[0], side="right")) if after else 0
            stop = min(ties + page_size + 1, len(hit))
            if stop > start:
                stop = int(np.searchsorted(when, when[stop - 1], side="right"))
            window = hit[start:stop]
            info = await repo.subject_info(conn, tenant_id, entries.subject[window].tolist())
        candidates = sorted(
            (int(when[start + i]), info[int(entries.subject[e])].key, int(e))
            for i, e in enumerate(window.tolist())
            if int(entries.subject[e]) in info
        )
        if after:
            candidates = [c for c in candidates if (c[0], c[1]) > after]
        page = candidates[:page_size]
        more = len(candidates) > page_size or stop < len(hit)
        token = _encode_token(fingerprint, page[-1][0], page[-1][1]) if more and page else ""
        return DropOffPage(
            [
                DropOff(
                    info[int(entries.subject[e])],
                    step_index - 1,
                    t,
                    values[e] if values is not None else "",
                )
                for t, _, e in page
            ],
            len(hit),
            token,
        )

    async def every_drop_off(
        self,
        tenant_id: str,
        query: FunnelQuery,
        step_index: int,
        breakdown_value: str | None,
        batch: int = DROP_OFF_BATCH,
    ) -> AsyncIterator[DropOffPage]:
        """Every drop-off of the step, in the order of the list, a batch at a time (exports):
        the funnel is computed once and the subjects read batch by batch in its snapshot."""
        async with (
            self._context.pool.acquire() as conn,
            conn.transaction(isolation="repeatable_read", readonly=True),
        ):
            entries, values = await self._entries(conn, tenant_id, query)
            members: I64 | None = None
            if breakdown_value is not None and values is not None:
                members = np.flatnonzero(np.asarray(values, dtype=object) == breakdown_value)
            hit, when = dropped(entries, step_index, members)
            start = 0
            while start < len(hit):
                # Whole runs of equal times, which sort among themselves by subject id.
                stop = int(np.searchsorted(when, when[min(start + batch, len(hit)) - 1], "right"))
                window = hit[start:stop]
                info = await repo.subject_info(conn, tenant_id, entries.subject[window].tolist())
                found = sorted(
                    (int(when[start + i]), info[int(entries.subject[e])].key, int(e))
                    for i, e in enumerate(window.tolist())
                    if int(entries.subject[e]) in info
                )
                yield DropOffPage(
                    [
                        DropOff(
                            info[int(entries.subject[e])],
                            step_index - 1,
                            t,
                            values[e] if values is not None else "",
                        )
                        for t, _, e in found
                    ],
                    len(hit),
                    "",
                )
                start = stop


def _event_type_name(tagged: str) -> str:
    if tagged.startswith("c"):
        return tagged[1:]
    if tagged.startswith("t") and tagged[1:].isdigit():
        return EVENT_TYPE_NAMES.get(int(tagged[1:]), "")
    return ""


def fingerprint(*parts: bytes) -> str:
    digest = hashlib.sha256()
    for part in parts:
        digest.update(len(part).to_bytes(8, "big"))
        digest.update(part)
    return digest.hexdigest()[:16]


def _encode_token(query_fingerprint: str, time_us: int, key: str) -> str:
    raw = json.dumps([query_fingerprint, time_us, key], separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _decode_token(token: str, query_fingerprint: str) -> tuple[int, str]:
    try:
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
        fp, time_us, key = json.loads(raw)
        valid = isinstance(time_us, int) and isinstance(key, str)
    except (binascii.Error, ValueError, TypeError):
        valid, fp = False, None
    if not valid:
        raise InvalidArgument.field("page.page_token", "is not a page token of this list")
    if fp != query_fingerprint:
        raise InvalidArgument.field(
            "page.page_token", "belongs to another funnel, step or breakdown value"
        )
    return time_us, key
