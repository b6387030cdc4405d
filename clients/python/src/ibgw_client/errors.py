"""Errors raised by the clients.

Every error of a call is a `GatewayError`, which is also a `grpc.RpcError` with the usual
`code()` and `details()` methods, so code written against raw stubs keeps working. The subclass
names the status codes gateway-svc uses (README: "Status codes are chosen in one place").
"""

from __future__ import annotations

from typing import Dict, Optional, Type

import grpc

from ._models import Health

__all__ = [
    "DeadlineExceededError",
    "GatewayError",
    "InvalidArgumentError",
    "NotFoundError",
    "NotReadyError",
    "ResourceExhaustedError",
    "UnauthenticatedError",
    "UnavailableError",
]


class GatewayError(grpc.RpcError):
    """A failed call: the gRPC status code and the service's message."""

    def __init__(self, code: grpc.StatusCode, details: str) -> None:
        super().__init__(f"{code.name}: {details}")
        self._code = code
        self._details = details

    def code(self) -> grpc.StatusCode:
        return self._code

    def details(self) -> str:
        return self._details


class UnavailableError(GatewayError):
    """gateway-svc could not be reached, has no data yet (before its first sync), or is
    shutting down."""


class NotFoundError(GatewayError):
    """An unknown account in a filter."""


class InvalidArgumentError(GatewayError):
    """A malformed filter (empty value, bad characters, too long, too many)."""


class UnauthenticatedError(GatewayError):
    """A missing or wrong bearer token."""


class DeadlineExceededError(GatewayError):
    """No answer within the call's deadline."""


class ResourceExhaustedError(GatewayError):
    """The stream cap was reached, or the service is shedding load."""


class NotReadyError(GatewayError):
    """`wait_for_ready` ran out of time. `last` is the last health seen (None when gateway-svc
    never answered); `reachable` says whether gateway-svc answered at all."""

    def __init__(self, details: str, last: Optional[Health]) -> None:
        super().__init__(grpc.StatusCode.DEADLINE_EXCEEDED, details)
        self.last = last
        self.reachable = last is not None and not last.synthetic


_BY_CODE: Dict[grpc.StatusCode, Type[GatewayError]] = {
    grpc.StatusCode.UNAVAILABLE: UnavailableError,
    grpc.StatusCode.NOT_FOUND: NotFoundError,
    grpc.StatusCode.INVALID_ARGUMENT: InvalidArgumentError,
    grpc.StatusCode.UNAUTHENTICATED: UnauthenticatedError,
    grpc.StatusCode.DEADLINE_EXCEEDED: DeadlineExceededError,
    grpc.StatusCode.RESOURCE_EXHAUSTED: ResourceExhaustedError,
}


def status_code(e: grpc.RpcError) -> grpc.StatusCode:
    code = getattr(e, "code", None)
    value = code() if callable(code) else None
    return value if isinstance(value, grpc.StatusCode) else grpc.StatusCode.UNKNOWN


def status_details(e: grpc.RpcError) -> str:
    details = getattr(e, "details", None)
    value = details() if callable(details) else None
    return value if isinstance(value, str) else str(e)


def from_rpc_error(e: grpc.RpcError) -> GatewayError:
    """The GatewayError for a raw grpc.RpcError (itself when it already is one)."""
    if isinstance(e, GatewayError):
        return e
    code = status_code(e)
    return _BY_CODE.get(code, GatewayError)(code, status_details(e))
