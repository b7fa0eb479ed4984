"""`leadflow routing apply -f FILE` / `leadflow routing show`: the routing configuration as
YAML in and out (registered under the `leadflow.commands` entry point group)."""

from __future__ import annotations

import argparse
import asyncio
import sys
from pathlib import Path
from typing import Any

import grpc

from leadflow.routing.v1 import routing_service_pb2 as pb
from leadflow.routing.v1 import routing_service_pb2_grpc
from leadflow_platform.grpc.client import api_key_metadata, open_channel
from leadflow_platform.service import DEFAULT_PORTS
from leadflow_routing.api.mapping import config_from_proto, config_to_proto
from leadflow_routing.domain.document import DocumentError, dump_yaml, load_yaml
from leadflow_routing.domain.validation import validate_config

DEFAULT_TARGET = f"127.0.0.1:{DEFAULT_PORTS['routing']}"


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    routing = subparsers.add_parser("routing", help="apply or show the routing configuration")
    actions = routing.add_subparsers(dest="routing_command", required=True)
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--key", required=True, help="API key of the tenant (admin to apply)")
    common.add_argument("--target", default=DEFAULT_TARGET, help="routing service host:port")

    apply = actions.add_parser(
        "apply", parents=[common], help="validate a YAML configuration and store it"
    )
    apply.add_argument("-f", "--file", required=True, help="YAML file ('-' for stdin)")
    apply.add_argument(
        "--validate-only", action="store_true", help="check it on the server, store nothing"
    )
    apply.set_defaults(run=_apply)

    show = actions.add_parser("show", parents=[common], help="print a configuration as YAML")
    show.add_argument("--version", type=int, help="a stored version (default: the active one)")
    show.set_defaults(run=_show)


def _apply(args: argparse.Namespace) -> int:
    text = sys.stdin.read() if args.file == "-" else Path(args.file).read_text()
    try:
        config = load_yaml(text)
    except DocumentError as exc:
        for violation in exc.violations:
            print(f"{args.file}: {violation}", file=sys.stderr)
        return 1
    violations, _ = validate_config(config, prefix="")
    if violations:
        for violation in violations:
            print(f"{args.file}: {violation}", file=sys.stderr)
        return 1
    request = pb.PutRoutingConfigRequest(
        config=config_to_proto(config), validate_only=args.validate_only
    )
    reply = asyncio.run(_call(args, "PutRoutingConfig", request))
    if reply is None:
        return 1
    for warning in reply.warnings:
        print(f"warning: {warning.field}: {warning.message}", file=sys.stderr)
    if args.validate_only:
        print("configuration is valid")
    else:
        print(f"routing configuration version {reply.version} is active")
    return 0


def _show(args: argparse.Namespace) -> int:
    request = pb.GetRoutingConfigRequest()
    if args.version is not None:
        request.version = args.version
    reply = asyncio.run(_call(args, "GetRoutingConfig", request))
    if reply is None:
        return 1
    sys.stdout.write(dump_yaml(config_from_proto(reply.config)))
    return 0


async def _call(args: argparse.Namespace, method: str, request: Any) -> Any:
    async with open_channel(args.target) as channel:
        stub = routing_service_pb2_grpc.RoutingServiceStub(channel)
        try:
            return await getattr(stub, method)(
                request, metadata=api_key_metadata(args.key), timeout=30
            )
        except grpc.aio.AioRpcError as exc:
            print(f"leadflow: {exc.code().name}: {exc.details()}", file=sys.stderr)
            return None
