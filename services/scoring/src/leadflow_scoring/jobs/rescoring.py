"""Background rescoring: every lead of a tenant recomputed, in lead id order, a chunk per
transaction, with progress visible in the job's row (GetScoringJob, GetScoringModel).

Any replica runs any job. A replica claims a job with a lease (FOR UPDATE SKIP LOCKED, so
two never claim the same one) and renews it with each chunk; a replica that stops releases
it and one that dies lets it run out, and the next claim resumes after the job's cursor (the
last lead id done). Each chunk first locks the job's row and checks the job is still this
replica's and still running, so a cancellation (a newer model version) takes effect at the
next chunk.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import uuid
from datetime import UTC, datetime

import asyncpg

from leadflow_platform.lifecycle import ServiceContext
from leadflow_platform.logging import get_logger
from leadflow_scoring.db import repository as repo
from leadflow_scoring.leads import Leads

log = get_logger(__name__)
MAX_ATTEMPTS = 5
CAUSES = {"model_rescore": "model_change", "score_leads": "rescore"}


class JobRunner:
    def __init__(
        self,
        context: ServiceContext,
        leads: Leads,
        *,
        chunk_size: int,
        poll_seconds: float,
        lease_seconds: float,
    ) -> None:
        self._context = context
        self._leads = leads
        self._chunk = chunk_size
        self._poll = poll_seconds
        self._lease = lease_seconds
        self._owner = f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:8]}"
        self._wake = asyncio.Event()

    def wake(self) -> None:
        """A job was just created: look now rather than at the next poll."""
        self._wake.set()

    async def run(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            try:
                worked = await self.run_once(stop)
            except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
                log.warning("scoring_job_poll_failed", error=repr(exc))
                worked = False
            if worked:
                continue
            self._wake.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(_first_of(self._wake.wait(), stop.wait()), self._poll)

    async def run_once(self, stop: asyncio.Event | None = None) -> bool:
        """Claim one job and work on it; False when there was none to claim."""
        async with self._context.pool.acquire() as conn:
            job = await repo.claim_job(conn, self._owner, self._lease)
        if job is None:
            return False
        log.info("scoring_job_claimed", job_id=job["job_id"], kind=job["kind"])
        try:
            await self._work(job, stop or asyncio.Event())
        except Exception as exc:
            log.exception("scoring_job_failed", job_id=job["job_id"], attempt=job["attempts"])
            async with self._context.pool.acquire() as conn:
                if job["attempts"] >= MAX_ATTEMPTS:
                    await repo.finish_job(
                        conn, job["job_id"], "failed", datetime.now(UTC), error=repr(exc)[:1000]
                    )
                else:
                    await repo.release_job(conn, job["job_id"], self._owner)
        return True

    async def _work(self, job: asyncpg.Record, stop: asyncio.Event) -> None:
        job_id, tenant_id, kind = job["job_id"], job["tenant_id"], job["kind"]
        cursor = job["cursor"]
        if job["attempts"] == 1 and not cursor:
            async with self._context.pool.acquire() as conn:
                total = await repo.count_leads(conn, tenant_id)
                await repo.job_progress(
                    conn,
                    job_id,
                    cursor="",
                    done=0,
                    changed=0,
                    lease_seconds=self._lease,
                    total=total,
                )
        while True:
            if stop.is_set():
                async with self._context.pool.acquire() as conn:
                    await repo.release_job(conn, job_id, self._owner)
                return
            now = datetime.now(UTC)
            async with self._context.pool.acquire() as conn, conn.transaction():
                current = await repo.job(conn, tenant_id, job_id, lock=True)
                if (
                    current is None
                    or current["state"] != "running"
                    or current["lease_owner"] != self._owner
                ):
                    log.info("scoring_job_left", job_id=job_id)
                    return
                ids = await repo.lead_ids_after(conn, tenant_id, cursor, self._chunk)
                if not ids:
                    await repo.finish_job(conn, job_id, "succeeded", now)
                    log.info("scoring_job_succeeded", job_id=job_id, leads=current["leads_done"])
                    return
                model = None
                if kind == "model_rescore":
                    model = await self._leads.models.version(conn, tenant_id, job["model_version"])
                states, model = await self._leads.lock(
                    conn, tenant_id, ids, now=now, create=False, model=model
                )
                scored = await self._leads.save(
                    conn,
                    tenant_id,
                    list(states.values()),
                    model,
                    now=now,
                    cause=CAUSES[kind],
                    causation_id=job_id,
                )
                cursor = ids[-1]
                await repo.job_progress(
                    conn,
                    job_id,
                    cursor=cursor,
                    done=len(scored),
                    changed=sum(1 for s in scored if s.verdict.changed),
                    lease_seconds=self._lease,
                )


async def _first_of(*waits: object) -> None:
    tasks = [asyncio.ensure_future(w) for w in waits]  # type: ignore[call-overload]
    try:
        await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for t in tasks:
            t.cancel()
