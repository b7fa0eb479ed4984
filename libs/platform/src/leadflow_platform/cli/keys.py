"""`leadflow keys create|list|revoke`: API keys for tenants."""

from __future__ import annotations

import argparse
import asyncio

from rich.console import Console
from rich.table import Table

from leadflow_platform.cli.common import require_database
from leadflow_platform.db.migrations_runner import migrate
from leadflow_platform.db.pool import connect
from leadflow_platform.service import tenancy_migrations
from leadflow_platform.tenancy.keys import parse_scopes, validate_tenant_id
from leadflow_platform.tenancy.store import SCHEMA, create_key, list_keys, revoke_key

console = Console()


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    keys = subparsers.add_parser("keys", help="create, list and revoke tenant API keys")
    actions = keys.add_subparsers(dest="keys_command", required=True)

    create = actions.add_parser("create", help="create a key; it is printed once, only here")
    create.add_argument("--tenant", required=True, help="tenant (portfolio) id, e.g. 371minds")
    create.add_argument(
        "--scope",
        action="append",
        choices=["ingest", "read", "admin"],
        help="what the key may do (repeatable; default: admin, which allows everything)",
    )
    create.add_argument("--name", default="", help="a label to recognise the key by")
    create.set_defaults(run=_create)

    listing = actions.add_parser("list", help="list keys (never their secrets)")
    listing.add_argument("--tenant", help="only this tenant's keys")
    listing.set_defaults(run=_list)

    revoke = actions.add_parser("revoke", help="revoke a key by its id")
    revoke.add_argument("key_id", help="the 12-character id shown by `leadflow keys list`")
    revoke.set_defaults(run=_revoke)


def _create(args: argparse.Namespace) -> int:
    try:
        tenant = validate_tenant_id(args.tenant)
        scopes = parse_scopes(args.scope or ["admin"])
    except ValueError as exc:
        console.print(f"[red]{exc}[/red]")
        return 2

    async def run() -> str:
        conn = await connect(require_database())
        try:
            await migrate(conn, SCHEMA, tenancy_migrations())
            key = await create_key(conn, tenant, scopes, args.name)
        finally:
            await conn.close()
        return key.token

    token = asyncio.run(run())
    print(token)
    Console(stderr=True).print(
        f"[dim]key for tenant {tenant}, scopes: {', '.join(sorted(s.value for s in scopes))}."
        " It is shown only now; store it safely.[/dim]"
    )
    return 0


def _list(args: argparse.Namespace) -> int:
    async def run() -> list:
        conn = await connect(require_database())
        try:
            await migrate(conn, SCHEMA, tenancy_migrations())
            return await list_keys(conn, args.tenant)
        finally:
            await conn.close()

    table = Table("key id", "tenant", "scopes", "name", "created", "revoked")
    for key in asyncio.run(run()):
        table.add_row(
            key.key_id,
            key.tenant_id,
            ", ".join(sorted(s.value for s in key.scopes)),
            key.name,
            key.created_at.strftime("%Y-%m-%d %H:%M"),
            key.revoked_at.strftime("%Y-%m-%d %H:%M") if key.revoked_at else "",
        )
    console.print(table)
    return 0


def _revoke(args: argparse.Namespace) -> int:
    async def run() -> bool:
        conn = await connect(require_database())
        try:
            return await revoke_key(conn, args.key_id)
        finally:
            await conn.close()

    if asyncio.run(run()):
        console.print(f"revoked {args.key_id}")
        return 0
    console.print(f"[red]no active key with id {args.key_id}[/red]")
    return 1
