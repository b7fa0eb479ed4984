"""`leadflow report weekly --tenant T --out FILE.html`: the weekly report from the reporting
service, written as HTML (and plain text with --text). Registered under the
`leadflow.commands` entry point group; imports stay inside the commands, since every
`leadflow` invocation loads this module.

The call needs a read key of the tenant: --key, else LEADFLOW_API_KEY, else (with a database
at hand: LEADFLOW_DATABASE_URL or a running `leadflow up`) a temporary read key created for
the call and revoked after it. The tenant the server names for the key must be --tenant;
otherwise nothing is written."""

from __future__ import annotations

import argparse
from datetime import date
from typing import Any

DEFAULT_HOST = "127.0.0.1"
TEMPORARY_KEY_NAME = "leadflow report weekly (temporary)"


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    report = subparsers.add_parser("report", help="write reports to files")
    kinds = report.add_subparsers(dest="report_command", required=True)
    weekly = kinds.add_parser(
        "weekly", help="the weekly report as a self-contained HTML file (and plain text)"
    )
    weekly.add_argument("--tenant", required=True, help="tenant (portfolio) id, e.g. 371minds")
    weekly.add_argument("--out", required=True, help="HTML file to write")
    weekly.add_argument("--text", help="also write the plain-text version to this file")
    weekly.add_argument(
        "--week",
        type=date.fromisoformat,
        help="any day of the week, YYYY-MM-DD (default: the last complete week)",
    )
    weekly.add_argument("--time-zone", default="UTC", help="IANA time zone of the week")
    weekly.add_argument(
        "--brand", action="append", default=[], dest="brands", help="only this brand (repeatable)"
    )
    weekly.add_argument(
        "--target",
        help="reporting host:port (default: the running `leadflow up`'s, else 127.0.0.1:50055)",
    )
    weekly.add_argument(
        "--key",
        help="API key of the tenant (default: $LEADFLOW_API_KEY, else a temporary read key)",
    )
    weekly.set_defaults(run=_weekly)


def _fail(message: str, code: int = 1) -> int:
    import sys

    print(f"leadflow: {message}", file=sys.stderr)
    return code


def _target(explicit: str | None) -> str:
    if explicit:
        return explicit
    from leadflow_platform.cli.stack import StackFile
    from leadflow_platform.service import DEFAULT_PORTS
    from leadflow_platform.settings import Settings, SettingsError

    try:
        stack = StackFile.read(Settings.from_env().data_dir)
    except SettingsError:
        stack = None
    if stack is not None and "reporting" in stack.services:
        return stack.services["reporting"]
    return f"{DEFAULT_HOST}:{DEFAULT_PORTS['reporting']}"


def _request(args: argparse.Namespace) -> Any:
    from datetime import UTC, datetime, time
    from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

    from leadflow.reporting.v1 import reporting_service_pb2 as pb

    request = pb.GetWeeklyReportRequest(time_zone=args.time_zone, brand_ids=args.brands)
    if args.week is not None:
        # Noon of that day in the week's time zone: inside the week whatever the offset.
        # A zone unknown here is sent as given; the server names it as the bad field.
        try:
            zone: Any = ZoneInfo(args.time_zone)
        except (ZoneInfoNotFoundError, ValueError):
            zone = UTC
        request.week_start.FromDatetime(
            datetime.combine(args.week, time(12), tzinfo=zone).astimezone(UTC)
        )
    return request


def _weekly(args: argparse.Namespace) -> int:
    import asyncio
    import os

    from leadflow_platform.tenancy.keys import parse_key, validate_tenant_id

    try:
        validate_tenant_id(args.tenant)
    except ValueError as exc:
        return _fail(str(exc), 2)
    key = args.key or os.environ.get("LEADFLOW_API_KEY", "")
    if key and parse_key(key) is None:
        return _fail("the API key is not a leadflow key (lf_<id>_<secret>)")
    request = _request(args)
    target = _target(args.target)
    if key:
        return asyncio.run(_report(args, target, key, request))
    from leadflow_platform.cli.common import settings

    database_url = settings().database_url
    if not database_url:
        return _fail(
            "no API key: pass --key or set LEADFLOW_API_KEY (or run next to `leadflow up`,"
            " or set LEADFLOW_DATABASE_URL, to use a temporary read key)"
        )
    return asyncio.run(_with_temporary_key(args, target, database_url, request))


async def _with_temporary_key(
    args: argparse.Namespace, target: str, database_url: str, request: Any
) -> int:
    """A read key of the tenant for this call only, revoked whatever happens."""
    from leadflow_platform.db.migrations_runner import migrate
    from leadflow_platform.db.pool import connect
    from leadflow_platform.service import tenancy_migrations
    from leadflow_platform.tenancy.keys import Scope
    from leadflow_platform.tenancy.store import SCHEMA, create_key, revoke_key

    conn = await connect(database_url)
    try:
        await migrate(conn, SCHEMA, tenancy_migrations())
        known = await conn.fetchval(
            "SELECT true FROM tenancy.tenants WHERE tenant_id = $1", args.tenant
        )
        if not known:
            return _fail(f"no tenant {args.tenant!r} in the database")
        key = await create_key(conn, args.tenant, frozenset({Scope.READ}), TEMPORARY_KEY_NAME)
        try:
            return await _report(args, target, key.token, request)
        finally:
            await revoke_key(conn, key.key_id)
    finally:
        await conn.close()


async def _report(args: argparse.Namespace, target: str, key: str, request: Any) -> int:
    from pathlib import Path

    import grpc

    from leadflow.reporting.v1 import reporting_service_pb2_grpc
    from leadflow_platform.grpc.client import api_key_metadata, open_channel
    from leadflow_reporting.weekly import TENANT_HEADER

    async with open_channel(target) as channel:
        stub = reporting_service_pb2_grpc.ReportingServiceStub(channel)
        call = stub.GetWeeklyReport(request, metadata=api_key_metadata(key), timeout=120)
        try:
            reply = await call
            headers = await call.initial_metadata()
        except grpc.aio.AioRpcError as exc:
            return _fail(f"{exc.code().name}: {exc.details()}")
    tenant = dict(headers or ()).get(TENANT_HEADER, "")
    if tenant != args.tenant:
        return _fail(
            f"the API key belongs to tenant {tenant or '(unknown)'!r}, not {args.tenant!r};"
            " nothing written"
        )
    written = [Path(args.out)]
    written[0].write_text(reply.html, encoding="utf-8")
    if args.text:
        written.append(Path(args.text))
        written[1].write_text(reply.text, encoding="utf-8")
    for path in written:
        print(path)
    return 0
