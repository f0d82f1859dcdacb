"""etcd's own errors, word for word: clientv3 recognizes an error by its message text alone.

Each is a gRPC status code and message exactly as etcd 3.4 sends them (etcd's
``api/v3rpc/rpctypes/error.go``), raised as :class:`EtcdError` and turned into the call's status in one
place (:func:`abort`). Errors of the etcd behind the front are passed on unchanged.
"""

from __future__ import annotations

from typing import Any, NoReturn, TypeAlias

import grpc

__all__ = [
    "AUTH_FAILED",
    "Context",
    "AUTH_NOT_ENABLED",
    "COMPACTED",
    "DUPLICATE_KEY",
    "EMPTY_KEY",
    "FUTURE_REVISION",
    "INVALID_TOKEN",
    "KEY_NOT_FOUND",
    "LEASE_NOT_FOUND",
    "PERMISSION_DENIED",
    "REQUEST_TIMED_OUT",
    "TOO_MANY_OPS",
    "TOO_MANY_REQUESTS",
    "USER_EMPTY",
    "EtcdError",
    "abort",
    "passed_on",
]


Context: TypeAlias = Any
"""A call's ``grpc.aio.ServicerContext`` (grpc ships no type information)."""


class EtcdError(Exception):
    """A gRPC status as etcd answers it."""

    def __init__(self, code: grpc.StatusCode, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message

    def __call__(self) -> EtcdError:
        """A fresh instance (the constants below are templates)."""
        return EtcdError(self.code, self.message)


EMPTY_KEY = EtcdError(grpc.StatusCode.INVALID_ARGUMENT, "etcdserver: key is not provided")
KEY_NOT_FOUND = EtcdError(grpc.StatusCode.INVALID_ARGUMENT, "etcdserver: key not found")
TOO_MANY_OPS = EtcdError(grpc.StatusCode.INVALID_ARGUMENT, "etcdserver: too many operations in txn request")
DUPLICATE_KEY = EtcdError(grpc.StatusCode.INVALID_ARGUMENT, "etcdserver: duplicate key given in txn request")
COMPACTED = EtcdError(grpc.StatusCode.OUT_OF_RANGE, "etcdserver: mvcc: required revision has been compacted")
FUTURE_REVISION = EtcdError(
    grpc.StatusCode.OUT_OF_RANGE, "etcdserver: mvcc: required revision is a future revision"
)
LEASE_NOT_FOUND = EtcdError(grpc.StatusCode.NOT_FOUND, "etcdserver: requested lease not found")
USER_EMPTY = EtcdError(grpc.StatusCode.INVALID_ARGUMENT, "etcdserver: user name is empty")
AUTH_FAILED = EtcdError(
    grpc.StatusCode.INVALID_ARGUMENT, "etcdserver: authentication failed, invalid user ID or password"
)
PERMISSION_DENIED = EtcdError(grpc.StatusCode.PERMISSION_DENIED, "etcdserver: permission denied")
AUTH_NOT_ENABLED = EtcdError(grpc.StatusCode.FAILED_PRECONDITION, "etcdserver: authentication is not enabled")
INVALID_TOKEN = EtcdError(grpc.StatusCode.UNAUTHENTICATED, "etcdserver: invalid auth token")
TOO_MANY_REQUESTS = EtcdError(grpc.StatusCode.RESOURCE_EXHAUSTED, "etcdserver: too many requests")


REQUEST_TIMED_OUT = EtcdError(grpc.StatusCode.UNAVAILABLE, "etcdserver: request timed out")


def passed_on(err: grpc.aio.AioRpcError) -> EtcdError:
    """The error of a call the front passed on to etcd, as it is — but for the front's own deadline
    on that call (``--etcd-request-timeout``, not the client's): expired here (DEADLINE_EXCEEDED) or
    at etcd first (which says UNKNOWN "context deadline exceeded"), it is etcd's answer to a request it
    could not serve in time, UNAVAILABLE "etcdserver: request timed out", which clientv3 retries. (A
    client whose own deadline is shorter gets its DEADLINE_EXCEEDED from its own side.)"""
    code, details = err.code(), err.details() or ""
    if code == grpc.StatusCode.DEADLINE_EXCEEDED or (
        code == grpc.StatusCode.UNKNOWN and "context deadline exceeded" in details
    ):
        return REQUEST_TIMED_OUT()
    return EtcdError(code, details)


async def abort(context: Context, error: EtcdError) -> NoReturn:
    """End the call with ``error``'s status."""
    await context.abort(error.code, error.message)
    raise AssertionError("unreachable: abort raises")  # pragma: no cover
