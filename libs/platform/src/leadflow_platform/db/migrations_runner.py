"""Forward-only SQL migrations, one ordered sequence per component, applied under a lock.

Files are named `NNNN_verb_object.sql` (e.g. `0001_create_events.sql`) and live in a package
directory beside the code that owns them. Each is applied once, in its own transaction, with
`search_path` set to the target schema, and recorded in `<schema>.schema_migrations` with a
checksum; editing an applied file is refused rather than silently ignored. A session-level
advisory lock per schema means replicas starting together apply each file exactly once.
After the files, still under the lock, the schema's tenant tables get row-level security
(`row_security.apply_row_security`), so a table added by any migration is covered.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Sequence
from dataclasses import dataclass
from importlib import resources

import asyncpg

from leadflow_platform.db.pool import quote_identifier
from leadflow_platform.db.row_security import apply_row_security
from leadflow_platform.logging import get_logger

log = get_logger(__name__)
_FILE = re.compile(r"^(\d{4})_([a-z0-9_]+)\.sql$")


class MigrationError(RuntimeError):
    pass


@dataclass(frozen=True)
class Migration:
    component: str
    version: int
    name: str
    sql: str

    @property
    def checksum(self) -> str:
        return hashlib.sha256(self.sql.encode()).hexdigest()


def load_migrations(component: str, package: str) -> list[Migration]:
    """Read `NNNN_name.sql` files from a package directory; versions must run 1, 2, 3..."""
    found: list[Migration] = []
    for entry in resources.files(package).iterdir():
        if not entry.name.endswith(".sql"):
            continue
        match = _FILE.match(entry.name)
        if not match:
            raise MigrationError(f"{package}/{entry.name}: expected NNNN_verb_object.sql")
        found.append(Migration(component, int(match[1]), match[2], entry.read_text()))
    found.sort(key=lambda m: m.version)
    expected = list(range(1, len(found) + 1))
    if [m.version for m in found] != expected:
        raise MigrationError(f"{package}: versions must be 0001.. without gaps or repeats")
    return found


def _lock_key(schema: str) -> int:
    digest = hashlib.sha256(f"leadflow:migrate:{schema}".encode()).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


async def migrate(
    conn: asyncpg.Connection, schema: str, migrations: Sequence[Migration]
) -> list[Migration]:
    """Apply what is missing from `migrations` to `schema`; return what was applied."""
    quoted = quote_identifier(schema)
    key = _lock_key(schema)
    await conn.execute("SELECT pg_advisory_lock($1)", key)
    try:
        await conn.execute(f"CREATE SCHEMA IF NOT EXISTS {quoted}")
        await conn.execute(
            f"""CREATE TABLE IF NOT EXISTS {quoted}.schema_migrations (
                component text NOT NULL,
                version integer NOT NULL,
                name text NOT NULL,
                checksum text NOT NULL,
                applied_at timestamptz NOT NULL DEFAULT now(),
                PRIMARY KEY (component, version))"""
        )
        rows = await conn.fetch(
            f"SELECT component, version, name, checksum FROM {quoted}.schema_migrations"
        )
        applied = {(r["component"], r["version"]): r for r in rows}
        done: list[Migration] = []
        for migration in migrations:
            previous = applied.get((migration.component, migration.version))
            if previous is not None:
                if previous["checksum"] != migration.checksum:
                    raise MigrationError(
                        f"{schema}: {migration.component} migration {migration.version:04d}_"
                        f"{migration.name} changed after it was applied; add a new migration"
                    )
                continue
            async with conn.transaction():
                await conn.execute(f"SET LOCAL search_path TO {quoted}")
                await conn.execute(migration.sql)
                await conn.execute(
                    f"INSERT INTO {quoted}.schema_migrations (component, version, name, checksum)"
                    " VALUES ($1, $2, $3, $4)",
                    migration.component,
                    migration.version,
                    migration.name,
                    migration.checksum,
                )
            log.info(
                "migration_applied",
                schema=schema,
                component=migration.component,
                version=migration.version,
                migration=migration.name,
            )
            done.append(migration)
        await apply_row_security(conn, schema)
        return done
    finally:
        await conn.execute("SELECT pg_advisory_unlock($1)", key)
