"""asyncpg pools whose connections see only their service's schema (`search_path`) and,
inside a request, only the caller's tenant (row-level security, `db/row_security.py`)."""

from __future__ import annotations

import asyncio
import json
import re
import time

import asyncpg

from leadflow_platform.db.row_security import RESET_ROLE_SQL, SWITCH_SQL, acting_tenant
from leadflow_platform.logging import get_logger

log = get_logger(__name__)
_IDENTIFIER = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")


def quote_identifier(name: str) -> str:
    """Schema names come from code, not users; still, refuse anything but plain identifiers."""
    if not _IDENTIFIER.match(name):
        raise ValueError(f"not a plain SQL identifier: {name!r}")
    return f'"{name}"'


async def _init_connection(conn: asyncpg.Connection) -> None:
    for type_name in ("json", "jsonb"):
        await conn.set_type_codec(
            type_name, encoder=json.dumps, decoder=json.loads, schema="pg_catalog"
        )


async def _enter_tenant(conn: asyncpg.pool.PoolConnectionProxy) -> None:
    """On acquire inside a request: become the tenant role, naming the tenant (one round
    trip). Outside a request (consumers, relays, jobs) the connection stays the service's."""
    tenant = acting_tenant()
    if tenant is not None:
        await conn.execute(SWITCH_SQL, tenant)


async def _reset(conn: asyncpg.Connection) -> None:
    # asyncpg's own reset (RESET ALL, which clears `leadflow.tenant`, but not the role)
    # with RESET ROLE in front: still one round trip on release.
    await conn.execute(RESET_ROLE_SQL + "\n" + conn.get_reset_query())


async def create_pool(
    dsn: str,
    *,
    schema: str,
    application_name: str,
    min_size: int = 2,
    max_size: int = 10,
    wait_seconds: float = 60.0,
) -> asyncpg.Pool:
    """Open a pool, waiting up to `wait_seconds` for the database to accept connections."""
    quote_identifier(schema)
    deadline = time.monotonic() + wait_seconds
    delay = 0.2
    while True:
        try:
            return await asyncpg.create_pool(
                dsn,
                min_size=min_size,
                max_size=max_size,
                init=_init_connection,
                setup=_enter_tenant,
                reset=_reset,
                server_settings={"search_path": schema, "application_name": application_name},
            )
        except (OSError, asyncpg.CannotConnectNowError, asyncpg.TooManyConnectionsError) as exc:
            if time.monotonic() >= deadline:
                raise
            log.warning("database_unavailable", error=str(exc), retry_in=delay)
            await asyncio.sleep(delay)
            delay = min(delay * 2, 5.0)


async def connect(dsn: str, *, schema: str | None = None) -> asyncpg.Connection:
    """One connection, for tools (CLI, migrations, tests) rather than request handling."""
    settings = {"application_name": "leadflow"}
    if schema:
        settings["search_path"] = quote_identifier(schema).strip('"')
    conn = await asyncpg.connect(dsn, server_settings=settings)
    await _init_connection(conn)
    return conn
