"""gRPC answers of etcd as watchcache errors (``raise ... from``), and protobuf key-values as ours."""

from __future__ import annotations

from typing import Any

import grpc

from ..errors import (
    EtcdUnavailableError,
    EtcdUnreachableError,
    ExpiredError,
    InternalError,
    RequestEntityTooLargeError,
    StatusError,
    TimedOutError,
)
from .types import KeyValue

__all__ = ["key_value", "translate"]


def key_value(pb: Any) -> KeyValue:
    return KeyValue(
        key=pb.key,
        value=pb.value,
        create_revision=pb.create_revision,
        mod_revision=pb.mod_revision,
        version=pb.version,
        lease=pb.lease,
    )


def translate(err: grpc.aio.AioRpcError, what: str, timeout: float | None = None) -> StatusError:
    """Our error for etcd's answer ``err`` to ``what`` (a call made with ``timeout``, when known)."""
    code = err.code()
    details = err.details() or ""
    if code == grpc.StatusCode.DEADLINE_EXCEEDED or "context deadline exceeded" in details:
        within = f"within {timeout:g} s" if timeout is not None else f"in time ({details})"
        return TimedOutError(f"no answer from etcd to {what} {within}")
    if code == grpc.StatusCode.UNAVAILABLE and not details.startswith("etcdserver:"):
        # The transport's own failure (no connection, connection lost); etcd's answers that it
        # cannot serve ("etcdserver: no leader", ...) are UNAVAILABLE too, and handled below.
        return EtcdUnreachableError(f"{what}: {details}")
    if code in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.CANCELLED):
        return EtcdUnavailableError(f"etcd is unavailable ({what}): {details}", retry_after=1)
    if code == grpc.StatusCode.RESOURCE_EXHAUSTED or "request is too large" in details:
        return RequestEntityTooLargeError(f"etcd refused the request as too large: {details}")
    if code == grpc.StatusCode.OUT_OF_RANGE and "compacted" in details:
        return ExpiredError(f"etcd: {details}")
    if "no leader" in details or "leader changed" in details or "timed out" in details:
        return EtcdUnavailableError(f"etcd has no leader ({what}): {details}", retry_after=1)
    return InternalError(f"etcd failed {what}: {code.name} {details}")
