"""The `leadflow` command: up, migrate, serve, services, keys, tenants."""

from __future__ import annotations

import argparse
import asyncio
import sys
from importlib.metadata import entry_points

from leadflow_platform.cli import keys, tenants, up


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="leadflow",
        description="leadflow: lead analytics and routing across a portfolio of brands.",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    up.add_parser(commands)

    migrate = commands.add_parser("migrate", help="apply every schema's migrations and streams")
    migrate.set_defaults(run=_migrate)

    serve = commands.add_parser("serve", help="run one service in this process")
    serve.add_argument("service", help="ingest, scoring, attribution, routing or reporting")
    serve.set_defaults(run=_serve)

    services = commands.add_parser("services", help="list the services that are installed")
    services.set_defaults(run=_services)

    keys.add_parser(commands)
    tenants.add_parser(commands)
    # Services add their own commands (e.g. `leadflow routing`) through this entry point
    # group: a function that takes the subparsers, like the modules above.
    for entry in entry_points(group="leadflow.commands"):
        entry.load()(commands)
    return parser


def main(argv: list[str] | None = None) -> int:
    import os

    from leadflow_platform.logging import configure_logging

    args = build_parser().parse_args(argv)
    # Logs go to stderr; stdout carries only what a command prints (e.g. a new key).
    configure_logging(
        level=os.environ.get("LEADFLOW_LOG_LEVEL", "warning") or "warning",
        fmt=os.environ.get("LEADFLOW_LOG_FORMAT", "auto") or "auto",
    )
    return int(args.run(args) or 0)


def _migrate(_: argparse.Namespace) -> int:
    from leadflow_platform.cli.common import require_database, settings
    from leadflow_platform.logging import configure_logging
    from leadflow_platform.provision import ensure_streams, migrate_all
    from leadflow_platform.service import discover_services

    resolved = settings()
    configure_logging(level=resolved.log_level, fmt=resolved.log_format, service="migrate")
    specs = list(discover_services().values())
    applied = asyncio.run(migrate_all(require_database(), specs))
    print(f"applied {len(applied)} migrations to tenancy and {len(specs)} service schemas")
    if resolved.nats_url:
        streams = asyncio.run(ensure_streams(resolved, specs))
        print(f"streams ready: {', '.join(streams) or 'none'}")
    else:
        print("LEADFLOW_NATS_URL not set: streams not provisioned (services create their own)")
    return 0


def _serve(args: argparse.Namespace) -> int:
    import os

    from leadflow_platform.cli.common import settings
    from leadflow_platform.main import run_service
    from leadflow_platform.service import discover_services

    services = discover_services()
    spec = services.get(args.service)
    if spec is None:
        installed = ", ".join(services) or "none"
        print(f"leadflow: service {args.service!r} is not installed (installed: {installed})",
              file=sys.stderr)  # fmt: skip
        return 2
    resolved = settings()  # fill server URLs from a running `leadflow up`
    os.environ.setdefault("LEADFLOW_DATABASE_URL", resolved.database_url)
    os.environ.setdefault("LEADFLOW_NATS_URL", resolved.nats_url)
    return run_service(spec)


def _services(_: argparse.Namespace) -> int:
    from leadflow_platform.service import SUITE, discover_services

    installed = discover_services()
    for name in SUITE:
        print(f"{name:12} {'installed' if name in installed else 'not built yet'}")
    for name in installed:
        if name not in SUITE:
            print(f"{name:12} installed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
