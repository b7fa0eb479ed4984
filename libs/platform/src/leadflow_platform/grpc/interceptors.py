"""The server interceptor every leadflow RPC passes through (after OpenTelemetry's).

In order, for each call to a leadflow service:
1. readiness: UNAVAILABLE until the service is up (health says NOT_SERVING meanwhile);
2. authentication: the API key from `authorization: Bearer <key>` or `x-api-key` metadata,
   UNAUTHENTICATED when absent, unknown or revoked;
3. authorization: the key must hold the method's `required_scope` (declared in the proto),
   PERMISSION_DENIED otherwise; a method that declares none is refused to everyone;
4. context: tenant, key and method bound to the log context and the span, and the tenant
   made the one whose rows the handler's database connections see (row-level security);
5. errors: `ServiceError`s become their status code with google.rpc details; anything else
   is logged and answered INTERNAL without leaking its text.
Health and reflection pass straight through: probes and grpcurl need no key.
"""

from __future__ import annotations

import asyncio
import contextvars
import inspect
import math
import time
from collections.abc import Awaitable, Callable
from functools import cache
from types import TracebackType
from typing import Any

import grpc
import structlog
from google.protobuf import descriptor_pool, duration_pb2
from google.rpc import code_pb2, error_details_pb2, status_pb2
from grpc_status import rpc_status
from opentelemetry import trace

from leadflow.common.v1 import options_pb2
from leadflow_platform import metrics
from leadflow_platform.db.row_security import acting_for
from leadflow_platform.errors import (
    InvalidArgument,
    PermissionDenied,
    ResourceExhausted,
    ServiceError,
    Unauthenticated,
    Unavailable,
)
from leadflow_platform.logging import get_logger
from leadflow_platform.tenancy.keys import Principal, Scope

log = get_logger(__name__)

_principal: contextvars.ContextVar[Principal | None] = contextvars.ContextVar(
    "leadflow_principal", default=None
)
OPEN_SERVICES = frozenset(
    {
        "grpc.health.v1.Health",
        "grpc.reflection.v1alpha.ServerReflection",
        "grpc.reflection.v1.ServerReflection",
    }
)

Authenticate = Callable[[str], Awaitable[Principal | None]]


def current_principal() -> Principal:
    """The authenticated caller of the RPC being served."""
    principal = _principal.get()
    if principal is None:
        raise Unauthenticated("no authenticated caller in this context")
    return principal


def current_tenant() -> str:
    return current_principal().tenant_id


@cache
def required_scope(full_method: str) -> Scope | None:
    """The `required_scope` option of `/package.Service/Method`, read from the contracts."""
    try:
        service_name, method_name = full_method.lstrip("/").rsplit("/", 1)
        service = descriptor_pool.Default().FindServiceByName(service_name)
        method = service.FindMethodByName(method_name)
    except (KeyError, ValueError):
        return None
    if method is None:
        return None
    return Scope.from_proto(method.GetOptions().Extensions[options_pb2.required_scope])


def api_key_from(metadata: tuple[tuple[str, str | bytes], ...] | None) -> str | None:
    for key, value in metadata or ():
        text = value.decode() if isinstance(value, bytes) else value
        if key == "authorization" and text.lower().startswith("bearer "):
            return text[7:].strip()
        if key == "x-api-key":
            return text.strip()
    return None


class ServiceInterceptor(grpc.aio.ServerInterceptor):
    def __init__(self, *, authenticate: Authenticate, is_ready: Callable[[], bool]) -> None:
        self._authenticate = authenticate
        self._is_ready = is_ready

    async def intercept_service(self, continuation, handler_call_details):
        handler = await continuation(handler_call_details)
        method = handler_call_details.method
        if handler is None or method.lstrip("/").rsplit("/", 1)[0] in OPEN_SERVICES:
            return handler
        api_key = api_key_from(handler_call_details.invocation_metadata)
        return _wrap(handler, lambda: self._admit(method, api_key), method)

    async def _admit(self, method: str, api_key: str | None) -> Principal:
        if not self._is_ready():
            raise Unavailable("service is starting; retry shortly", retry_after=1.0)
        if not api_key:
            raise Unauthenticated("missing API key: send 'authorization: Bearer <key>'")
        principal = await self._authenticate(api_key)
        if principal is None:
            raise Unauthenticated("unknown or revoked API key")
        scope = required_scope(method)
        if scope is None:
            raise PermissionDenied(f"{method} declares no required scope and is not callable")
        if not principal.allows(scope):
            raise PermissionDenied(f"{method} needs an API key with the '{scope.value}' scope")
        return principal


Admit = Callable[[], Awaitable[Principal]]


def _wrap(handler: grpc.RpcMethodHandler, admit: Admit, method: str) -> grpc.RpcMethodHandler:
    if handler.unary_unary:
        return grpc.unary_unary_rpc_method_handler(
            _unary(handler.unary_unary, admit, method),
            request_deserializer=handler.request_deserializer,
            response_serializer=handler.response_serializer,
        )
    if handler.stream_unary:
        return grpc.stream_unary_rpc_method_handler(
            _unary(handler.stream_unary, admit, method),
            request_deserializer=handler.request_deserializer,
            response_serializer=handler.response_serializer,
        )
    if handler.unary_stream:
        return grpc.unary_stream_rpc_method_handler(
            _streaming(handler.unary_stream, admit, method),
            request_deserializer=handler.request_deserializer,
            response_serializer=handler.response_serializer,
        )
    return grpc.stream_stream_rpc_method_handler(
        _streaming(handler.stream_stream, admit, method),
        request_deserializer=handler.request_deserializer,
        response_serializer=handler.response_serializer,
    )


def _unary(behavior: Callable[..., Any], admit: Admit, method: str) -> Callable[..., Any]:
    async def wrapped(request_or_iterator: Any, context: grpc.aio.ServicerContext) -> Any:
        with _measured(method, context) as outcome:
            try:
                with _bound(await admit(), method):
                    return await behavior(request_or_iterator, context)
            except Exception as exc:
                outcome.failed(exc)
                await _abort(context, exc, method)

    return wrapped


def _streaming(behavior: Callable[..., Any], admit: Admit, method: str) -> Callable[..., Any]:
    if not inspect.isasyncgenfunction(behavior):
        return _unary(behavior, admit, method)  # a handler that writes with context.write()

    async def wrapped(request_or_iterator: Any, context: grpc.aio.ServicerContext) -> Any:
        with _measured(method, context) as outcome:
            try:
                with _bound(await admit(), method):
                    async for response in behavior(request_or_iterator, context):
                        yield response
            except Exception as exc:
                outcome.failed(exc)
                await _abort(context, exc, method)

    return wrapped


class _measured:
    """Count the call and time it, labelled with the status code it ends with."""

    def __init__(self, method: str, context: grpc.aio.ServicerContext) -> None:
        self._method = method
        self._context = context
        self._code: str | None = None

    def failed(self, exc: Exception) -> None:
        if isinstance(exc, ServiceError):
            self._code = exc.code.name
        elif not isinstance(exc, grpc.aio.AbortError):
            self._code = "INTERNAL"

    def __enter__(self) -> _measured:
        self._started = time.perf_counter()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        code = self._code
        if code is None and exc_type is not None and issubclass(exc_type, asyncio.CancelledError):
            code = "CANCELLED"
        if code is None:
            # A handler that aborted or set a code itself; otherwise OK.
            chosen = self._context.code()
            code = chosen.name if isinstance(chosen, grpc.StatusCode) else "OK"
        metrics.record_rpc(self._method, code, time.perf_counter() - self._started)


class _bound:
    """Make the caller current for the handler: contextvar, log context, span attributes."""

    def __init__(self, principal: Principal, method: str) -> None:
        self._principal = principal
        self._method = method

    def __enter__(self) -> None:
        self._token = _principal.set(self._principal)
        self._logs = structlog.contextvars.bound_contextvars(
            tenant_id=self._principal.tenant_id, key_id=self._principal.key_id, rpc=self._method
        )
        self._logs.__enter__()
        self._rows = acting_for(self._principal.tenant_id)
        self._rows.__enter__()
        span = trace.get_current_span()
        span.set_attribute("leadflow.tenant_id", self._principal.tenant_id)
        span.set_attribute("leadflow.key_id", self._principal.key_id)

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._rows.__exit__(exc_type, exc, tb)
        self._logs.__exit__(exc_type, exc, tb)
        _principal.reset(self._token)


async def _abort(context: grpc.aio.ServicerContext, exc: Exception, method: str) -> None:
    if isinstance(exc, grpc.aio.AbortError):
        raise exc  # the handler already chose a status
    if not isinstance(exc, ServiceError):
        log.exception("rpc_failed", rpc=method)
        exc = ServiceError("internal error; it has been logged")
    status = to_status_proto(exc)
    rich = rpc_status.to_status(status)
    metadata = tuple(rich.trailing_metadata)
    retry_after = getattr(exc, "retry_after", None)
    if retry_after is not None:
        # Plain-header form of RetryInfo for clients that do not decode google.rpc details.
        metadata += (("retry-after", str(max(1, math.ceil(retry_after)))),)
    await context.abort(rich.code, rich.details, metadata)


def to_status_proto(exc: ServiceError) -> status_pb2.Status:
    status = status_pb2.Status(code=_CODES[exc.code], message=exc.message)
    if isinstance(exc, InvalidArgument):
        detail = error_details_pb2.BadRequest(
            field_violations=[
                error_details_pb2.BadRequest.FieldViolation(field=v.field, description=v.reason)
                for v in exc.violations
            ]
        )
        status.details.add().Pack(detail)
    retry_after = getattr(exc, "retry_after", None)
    if isinstance(exc, ResourceExhausted | Unavailable) and retry_after is not None:
        delay = duration_pb2.Duration()
        delay.FromMilliseconds(int(retry_after * 1000))
        status.details.add().Pack(error_details_pb2.RetryInfo(retry_delay=delay))
    return status


_CODES = {code: getattr(code_pb2, code.name) for code in grpc.StatusCode}
