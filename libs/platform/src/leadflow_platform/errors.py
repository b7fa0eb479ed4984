"""Errors a use case raises, and the gRPC status each one becomes.

Services raise these; the platform's error interceptor turns them into a status code, a
message, and rich `google.rpc` details (BadRequest field violations, RetryInfo), so a caller
learns which field was wrong or when to retry. Anything else becomes INTERNAL with a
generic message, and the real error is logged.
"""

from __future__ import annotations

from dataclasses import dataclass

import grpc


@dataclass(frozen=True)
class FieldViolation:
    field: str
    reason: str

    def __str__(self) -> str:
        return f"{self.field}: {self.reason}"


class ServiceError(Exception):
    code: grpc.StatusCode = grpc.StatusCode.INTERNAL

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class InvalidArgument(ServiceError):
    """The request is wrong; the message and details name every bad field."""

    code = grpc.StatusCode.INVALID_ARGUMENT

    def __init__(self, *violations: FieldViolation) -> None:
        if not violations:
            raise ValueError("InvalidArgument needs at least one field violation")
        self.violations = violations
        super().__init__("; ".join(str(v) for v in violations))

    @classmethod
    def field(cls, field: str, reason: str) -> InvalidArgument:
        return cls(FieldViolation(field, reason))


class Unauthenticated(ServiceError):
    code = grpc.StatusCode.UNAUTHENTICATED


class PermissionDenied(ServiceError):
    code = grpc.StatusCode.PERMISSION_DENIED


class NotFound(ServiceError):
    code = grpc.StatusCode.NOT_FOUND


class AlreadyExists(ServiceError):
    code = grpc.StatusCode.ALREADY_EXISTS


class FailedPrecondition(ServiceError):
    code = grpc.StatusCode.FAILED_PRECONDITION


class ResourceExhausted(ServiceError):
    """Rate limit or capacity reached; `retry_after` seconds tells the caller when to retry."""

    code = grpc.StatusCode.RESOURCE_EXHAUSTED

    def __init__(self, message: str, *, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class Unavailable(ServiceError):
    """Not able to work right now (starting, a dependency is down); safe to retry."""

    code = grpc.StatusCode.UNAVAILABLE

    def __init__(self, message: str, *, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after
