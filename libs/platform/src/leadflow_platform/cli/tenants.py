"""`leadflow tenants show|set`: per-tenant settings (retention, consent, IP handling, limits)."""

from __future__ import annotations

import argparse
import asyncio
import json
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import asyncpg

from leadflow_platform.cli.common import require_database
from leadflow_platform.db.migrations_runner import migrate
from leadflow_platform.db.pool import connect
from leadflow_platform.service import tenancy_migrations
from leadflow_platform.tenancy.keys import validate_tenant_id
from leadflow_platform.tenancy.store import SCHEMA, update_tenant_settings

T = TypeVar("T")


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    tenants = subparsers.add_parser("tenants", help="show or change a tenant's settings")
    actions = tenants.add_subparsers(dest="tenants_command", required=True)
    show = actions.add_parser("show", help="print a tenant's settings as JSON")
    show.add_argument("--tenant", required=True)
    show.set_defaults(run=_show)
    change = actions.add_parser(
        "set",
        help="set settings, e.g. retention_days=90 require_consent=true ip_mode=hash;"
        " KEY= (empty) removes a key",
    )
    change.add_argument("--tenant", required=True)
    change.add_argument("assignments", nargs="+", metavar="KEY=VALUE")
    change.set_defaults(run=_set)


def parse_assignment(text: str) -> tuple[str, Any]:
    key, sep, raw = text.partition("=")
    if not sep or not key.strip():
        raise ValueError(f"expected KEY=VALUE, got {text!r}")
    if raw == "":
        return key.strip(), None
    try:
        return key.strip(), json.loads(raw)  # numbers, true/false, JSON lists and objects
    except ValueError:
        return key.strip(), raw  # a plain string


async def _with_connection(work: Callable[[asyncpg.Connection], Awaitable[T]]) -> T:
    conn = await connect(require_database())
    try:
        await migrate(conn, SCHEMA, tenancy_migrations())
        return await work(conn)
    finally:
        await conn.close()


def _show(args: argparse.Namespace) -> int:
    validate_tenant_id(args.tenant)

    async def work(conn: asyncpg.Connection) -> dict[str, Any] | None:
        return await conn.fetchval(
            "SELECT settings FROM tenancy.tenants WHERE tenant_id = $1", args.tenant
        )

    settings = asyncio.run(_with_connection(work))
    print(json.dumps(settings or {}, indent=2, sort_keys=True))
    return 0


def _set(args: argparse.Namespace) -> int:
    try:
        validate_tenant_id(args.tenant)
        changes = dict(parse_assignment(a) for a in args.assignments)
    except ValueError as exc:
        print(f"leadflow: {exc}")
        return 2

    async def work(conn: asyncpg.Connection) -> dict[str, Any]:
        return await update_tenant_settings(conn, args.tenant, changes)

    print(json.dumps(asyncio.run(_with_connection(work)), indent=2, sort_keys=True))
    return 0
