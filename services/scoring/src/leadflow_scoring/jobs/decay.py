"""Re-evaluate idle leads whose score has decayed across a grade or temperature boundary.

Each lead's row holds `next_check_at`: when, with no new events, its grade or temperature
will next drop (domain decay.next_decay_crossing, set whenever the lead is scored). The job
takes due leads in batches with FOR UPDATE SKIP LOCKED, so several replicas share the work
and a lead that a consumer holds is left to it (its rescoring sets a new check time).
"""

from __future__ import annotations

import uuid
from collections import defaultdict
from datetime import datetime

from leadflow_platform.lifecycle import ServiceContext
from leadflow_platform.logging import get_logger
from leadflow_scoring.db import repository as repo
from leadflow_scoring.leads import Leads

log = get_logger(__name__)
BATCH = 500


async def rescore_due(context: ServiceContext, leads: Leads, now: datetime) -> int:
    """Rescore every lead due at `now`; returns how many were rescored."""
    run_id = f"decay-{uuid.uuid4().hex}"
    done = 0
    changed = 0
    while True:
        async with context.pool.acquire() as conn, conn.transaction():
            due = await repo.due_leads(conn, now, BATCH)
            by_tenant: dict[str, list[str]] = defaultdict(list)
            for tenant_id, lead_id in due:
                by_tenant[tenant_id].append(lead_id)
            for tenant_id, ids in by_tenant.items():
                states, model = await leads.lock(conn, tenant_id, ids, now=now, create=False)
                scored = await leads.save(
                    conn,
                    tenant_id,
                    list(states.values()),
                    model,
                    now=now,
                    cause="decay",
                    causation_id=run_id,
                )
                changed += sum(1 for s in scored if s.verdict.changed)
        done += len(due)
        if len(due) < BATCH:
            break
    if done:
        log.info("decay_rescored", leads=done, changed=changed, run_id=run_id)
    return done
