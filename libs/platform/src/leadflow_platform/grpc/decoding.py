"""Requests that are not a decodable message of the method's type (random bytes, truncated
fields, nesting past protobuf's depth limit) answered INVALID_ARGUMENT naming "request".

grpc.aio runs a handler's request deserializer before any interceptor's code sees the call,
and answers UNKNOWN when it raises. Here the deserializer hands back a marker instead, and
the handler raises InvalidArgument on meeting it: after the readiness and key checks of the
interceptors outside this one, so a caller without a key learns nothing about the contract.
"""

from __future__ import annotations

import inspect
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import grpc

from leadflow_platform.errors import InvalidArgument


class Undecodable:
    """What the deserializer returns for bytes it cannot decode."""

    def __init__(self, reason: str) -> None:
        self.reason = reason

    def refuse(self) -> InvalidArgument:
        return InvalidArgument.field("request", f"not a decodable request: {self.reason}")


def tolerant(deserializer: Callable[[bytes], Any] | None) -> Callable[[bytes], Any] | None:
    if deserializer is None:
        return None

    def deserialize(data: bytes) -> Any:
        try:
            return deserializer(data)
        except Exception as exc:  # protobuf's DecodeError, or RecursionError past its depth
            return Undecodable(str(exc)[:200])

    return deserialize


def _checked(request: Any) -> Any:
    if isinstance(request, Undecodable):
        raise request.refuse()
    return request


async def _checked_stream(requests: AsyncIterator[Any]) -> AsyncIterator[Any]:
    async for request in requests:
        yield _checked(request)


def _wrap_behavior(behavior: Callable[..., Any], client_streaming: bool) -> Callable[..., Any]:
    def prepare(request: Any) -> Any:
        return _checked_stream(request) if client_streaming else _checked(request)

    if inspect.isasyncgenfunction(behavior):

        async def streaming(request: Any, context: grpc.aio.ServicerContext) -> Any:
            async for response in behavior(prepare(request), context):
                yield response

        return streaming

    async def unary(request: Any, context: grpc.aio.ServicerContext) -> Any:
        result: Awaitable[Any] = behavior(prepare(request), context)
        return await result

    return unary


class DecodeRequests(grpc.aio.ServerInterceptor):
    """Innermost interceptor: every handler's requests are decoded without raising."""

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler]],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler:
        handler = await continuation(handler_call_details)
        if handler is None:
            return handler
        deserialize = tolerant(handler.request_deserializer)
        serialize = handler.response_serializer
        if handler.unary_unary:
            return grpc.unary_unary_rpc_method_handler(
                _wrap_behavior(handler.unary_unary, False), deserialize, serialize
            )
        if handler.unary_stream:
            return grpc.unary_stream_rpc_method_handler(
                _wrap_behavior(handler.unary_stream, False), deserialize, serialize
            )
        if handler.stream_unary:
            return grpc.stream_unary_rpc_method_handler(
                _wrap_behavior(handler.stream_unary, True), deserialize, serialize
            )
        return grpc.stream_stream_rpc_method_handler(
            _wrap_behavior(handler.stream_stream, True), deserialize, serialize
        )
