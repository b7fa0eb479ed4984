"""PostgreSQL row-level security: the database's own guard that a request sees one tenant.

The application code already filters every query by tenant; this is defence in depth, so a
query that forgets its `WHERE tenant_id = $1` still cannot read or write another tenant.

- `TENANT_ROLE` is a NOLOGIN role (not superuser, not BYPASSRLS, owning nothing) with DML
  on the tables of the leadflow schemas (but `schema_migrations`). A tenant table is one
  with a `tenant_id` column; tables without one hold no tenant's rows.
- Every tenant table has row security enabled AND forced (so its owner is subject to it
  too) and two permissive policies:
  `leadflow_tenant`: for `TENANT_ROLE`, rows whose tenant_id is the session's
  `leadflow.tenant` setting (unset or empty: no row, i.e. it fails closed);
  `leadflow_service`: for the role that ran the migrations (the services' own login role),
  every row, so cross-tenant workers (consumers, relays, jobs) keep working under FORCE
  where that role is not a superuser (superusers bypass row security anyway).
- A request's pool connection switches to `TENANT_ROLE` with the caller's tenant on
  acquire and back on release (`db/pool.py`); the gRPC interceptor makes the caller's
  tenant current with `acting_for` around each handler.

`apply_row_security` runs after a schema's migrations, idempotently and only where
something is missing, so tables added by later migrations are covered without a new step.
"""

from __future__ import annotations

import contextlib
import contextvars
from collections.abc import Iterator

import asyncpg

from leadflow_platform.logging import get_logger

log = get_logger(__name__)

TENANT_ROLE = "leadflow_tenant"
TENANT_SETTING = "leadflow.tenant"
TENANT_POLICY = "leadflow_tenant"
SERVICE_POLICY = "leadflow_service"

# One round trip: switch the pooled session to the tenant role and name the tenant.
SWITCH_SQL = (
    f"SELECT set_config('role', '{TENANT_ROLE}', false), set_config('{TENANT_SETTING}', $1, false)"
)
# RESET ALL (asyncpg's reset) does not reset the role: it is reset explicitly.
RESET_ROLE_SQL = "RESET ROLE;"

_acting: contextvars.ContextVar[str | None] = contextvars.ContextVar(
    "leadflow_rls_tenant", default=None
)


def acting_tenant() -> str | None:
    """The tenant whose request this task serves, or None (a worker: every tenant)."""
    return _acting.get()


@contextlib.contextmanager
def acting_for(tenant_id: str | None) -> Iterator[None]:
    """Pool connections acquired inside this block see only `tenant_id`'s rows (None: all).

    Tasks created inside inherit it (contextvars are copied), so work an RPC starts stays
    within its tenant; workers started at boot run outside any request and see every tenant.
    """
    token = _acting.set(tenant_id)
    try:
        yield
    finally:
        _acting.reset(token)


_CREATE_ROLE = f"""
DO $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = '{TENANT_ROLE}') THEN
        CREATE ROLE {TENANT_ROLE} NOLOGIN NOSUPERUSER NOBYPASSRLS NOCREATEDB NOCREATEROLE
            NOINHERIT;
    END IF;
EXCEPTION WHEN duplicate_object OR unique_violation THEN
    NULL;  -- another database's migration created it at the same moment (roles are global)
END $$"""

_JOIN_ROLE = f"""
DO $$
BEGIN
    IF NOT pg_has_role(current_user, '{TENANT_ROLE}', 'MEMBER') THEN
        EXECUTE format('GRANT {TENANT_ROLE} TO %I', current_user);
    END IF;
EXCEPTION WHEN duplicate_object OR unique_violation THEN
    NULL;
END $$"""

# Per relation of the schema: what is already in place, so only missing pieces are applied
# (ALTER TABLE takes an ACCESS EXCLUSIVE lock; replicas restarting must not queue on it).
_STATE = f"""
SELECT c.relname,
       c.relkind::text AS kind,
       EXISTS (SELECT 1 FROM pg_attribute a WHERE a.attrelid = c.oid
               AND a.attname = 'tenant_id' AND NOT a.attisdropped) AS has_tenant,
       c.relrowsecurity AS enabled,
       c.relforcerowsecurity AS forced,
       EXISTS (SELECT 1 FROM pg_policy p WHERE p.polrelid = c.oid
               AND p.polname = '{TENANT_POLICY}') AS tenant_policy,
       EXISTS (SELECT 1 FROM pg_policy p WHERE p.polrelid = c.oid
               AND p.polname = '{SERVICE_POLICY}'
               AND current_user::regrole::oid = ANY (p.polroles)) AS service_policy,
       (has_table_privilege('{TENANT_ROLE}', c.oid, 'SELECT')
        AND (c.relkind = 'v' OR (has_table_privilege('{TENANT_ROLE}', c.oid, 'INSERT')
             AND has_table_privilege('{TENANT_ROLE}', c.oid, 'UPDATE')
             AND has_table_privilege('{TENANT_ROLE}', c.oid, 'DELETE')))) AS granted,
       coalesce('security_invoker=true' = ANY (c.reloptions), false) AS invoker
  FROM pg_class c
 WHERE c.relnamespace = $1::regnamespace AND c.relkind IN ('r', 'p', 'v')
"""


async def ensure_tenant_role(conn: asyncpg.Connection) -> None:
    """Create `TENANT_ROLE` (cluster-wide, so possibly concurrently) and let us switch to it."""
    for attempt in range(5):
        try:
            await conn.execute(_CREATE_ROLE)
            await conn.execute(_JOIN_ROLE)
            return
        except asyncpg.InternalServerError:
            # "tuple concurrently updated" when two databases' migrations race on pg_authid.
            if attempt == 4:
                raise


async def apply_row_security(conn: asyncpg.Connection, schema: str) -> list[str]:
    """Grant, enable, force and add policies on `schema`'s tenant tables; return what changed.

    `schema` must already be a checked identifier (the migration runner quotes it).
    """
    await ensure_tenant_role(conn)
    quoted = f'"{schema}"'
    changed: list[str] = []
    server_version = conn.get_server_version()
    async with conn.transaction():
        if not await conn.fetchval(
            "SELECT has_schema_privilege($1, $2, 'USAGE')", TENANT_ROLE, schema
        ):
            await conn.execute(f"GRANT USAGE ON SCHEMA {quoted} TO {TENANT_ROLE}")
            changed.append(f"{schema}: usage")
        rows = await conn.fetch(_STATE, schema)
        tenant_tables = [r for r in rows if r["kind"] in ("r", "p") and r["has_tenant"]]
        for row in tenant_tables:
            table = f'{quoted}."{row["relname"]}"'
            if not (row["enabled"] and row["forced"]):
                await conn.execute(
                    f"ALTER TABLE {table} ENABLE ROW LEVEL SECURITY, FORCE ROW LEVEL SECURITY"
                )
                changed.append(f"{table}: enabled")
            if not row["tenant_policy"]:
                await conn.execute(
                    f"CREATE POLICY {TENANT_POLICY} ON {table} AS PERMISSIVE FOR ALL"
                    f" TO {TENANT_ROLE}"
                    f" USING (tenant_id = current_setting('{TENANT_SETTING}', true))"
                    f" WITH CHECK (tenant_id = current_setting('{TENANT_SETTING}', true))"
                )
                changed.append(f"{table}: tenant policy")
            if not row["service_policy"]:
                await conn.execute(f"DROP POLICY IF EXISTS {SERVICE_POLICY} ON {table}")
                await conn.execute(
                    f"CREATE POLICY {SERVICE_POLICY} ON {table} AS PERMISSIVE FOR ALL"
                    " TO CURRENT_USER USING (true) WITH CHECK (true)"
                )
                changed.append(f"{table}: service policy")
        for row in rows:
            if row["kind"] != "v":
                # Tables without tenant_id (inbox, a service's global tables) hold no
                # tenant's rows: granted as they are, so request paths may use them.
                if not row["granted"] and row["relname"] != "schema_migrations":
                    table = f'{quoted}."{row["relname"]}"'
                    await conn.execute(
                        f"GRANT SELECT, INSERT, UPDATE, DELETE ON {table} TO {TENANT_ROLE}"
                    )
                    changed.append(f"{table}: grant")
                continue
            view = f'{quoted}."{row["relname"]}"'
            # A view reads as its owner unless it is a security invoker view (PostgreSQL
            # 15+): then the reader's row security applies to the tables underneath.
            if server_version >= (15,) and not row["invoker"]:
                await conn.execute(f"ALTER VIEW {view} SET (security_invoker = true)")
                changed.append(f"{view}: security invoker")
            if not row["granted"]:
                await conn.execute(f"GRANT SELECT ON {view} TO {TENANT_ROLE}")
                changed.append(f"{view}: grant")
        sequences = await conn.fetch(
            "SELECT c.relname FROM pg_class c WHERE c.relnamespace = $1::regnamespace"
            " AND CASE WHEN c.relkind = 'S' THEN NOT has_sequence_privilege($2, c.oid, 'USAGE')"
            " ELSE false END",
            schema,
            TENANT_ROLE,
        )
        for seq in sequences:
            await conn.execute(
                f'GRANT USAGE, SELECT, UPDATE ON SEQUENCE {quoted}."{seq["relname"]}"'
                f" TO {TENANT_ROLE}"
            )
            changed.append(f"{schema}.{seq['relname']}: sequence grant")
    if changed:
        log.info("row_security_applied", schema=schema, changes=len(changed))
    return changed
