"""Per-tenant limits: request rate, concurrency with a queue of its own, watches, quotas, body shape.

Fairness between tenants comes from giving each tenant its own token bucket, its own in-flight slots
and its own bounded queue — in the spirit of kube-apiserver's API Priority and Fairness, where every
flow has its own queue — so a tenant that floods the service only ever waits behind itself, and gets
429 with ``Retry-After`` once its own queue is full, while other tenants' requests go straight in.

Quotas (objects and bytes stored across a tenant's writable groups) are checked before a write and
held as a reservation until the cache has seen the write, so concurrent writes cannot overshoot.

Memory is budgeted in bytes as well as counts: every piece of a response a tenant's requests hold
(a LIST or watch piece being written, a response body) is taken from the tenant's
``maxBytesInFlight`` before it is built and given back once the socket has taken it, so a tenant whose
clients stop reading waits on its own budget (and is dropped after the write timeout) while other
tenants' budgets are untouched.
"""

from __future__ import annotations

import asyncio
import math
from collections import deque
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from typing import Any

from ..api.patch import json_depth
from ..api.resource import Resource
from ..errors import BadRequestError, ForbiddenError, RequestEntityTooLargeError, TooManyRequestsError
from .auth import Authenticator
from .config import TenantLimits

__all__ = ["Admission", "ByteBudget", "admissions"]


class ByteBudget:
    """Bytes a tenant's responses may hold at once: pieces are taken before they are built and given
    back once written. A piece larger than the whole budget is let through alone, so nothing waits
    forever; waiters are served in order."""

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self.used = 0
        self._waiters: deque[tuple[int, asyncio.Future[None]]] = deque()

    @asynccontextmanager
    async def hold(self, size: int, timeout: float) -> AsyncIterator[None]:
        """Hold ``size`` bytes for the block; waits up to ``timeout`` seconds for room, then raises
        429 TooManyRequests."""
        if self._waiters or (self.used and self.used + size > self.capacity):
            future = asyncio.get_running_loop().create_future()
            entry = (size, future)
            self._waiters.append(entry)
            try:
                async with asyncio.timeout(timeout):
                    await future  # the bytes are taken for us by the release that wakes us
            except BaseException as err:
                if future.done() and not future.cancelled():
                    self._release(size)
                else:
                    self._waiters.remove(entry)
                    self._wake()
                if isinstance(err, TimeoutError):
                    raise TooManyRequestsError(
                        f"the responses in flight use the {self.capacity} bytes allowed; "
                        "their clients are not reading",
                        retry_after=1,
                    ) from None
                raise
        else:
            self.used += size
        try:
            yield
        finally:
            self._release(size)

    def _release(self, size: int) -> None:
        self.used -= size
        self._wake()

    def _wake(self) -> None:
        while self._waiters:
            size, future = self._waiters[0]
            if future.done():
                self._waiters.popleft()
                continue
            if self.used and self.used + size > self.capacity:
                return
            self._waiters.popleft()
            self.used += size
            future.set_result(None)


class _Bucket:
    def __init__(self, rate: float, burst: int) -> None:
        self.rate = rate
        self.burst = float(burst)
        self.tokens = float(burst)
        self.updated = asyncio.get_running_loop().time()

    def take(self) -> float:
        """0 when a request may go now, else the seconds until it could."""
        now = asyncio.get_running_loop().time()
        self.tokens = min(self.burst, self.tokens + (now - self.updated) * self.rate)
        self.updated = now
        if self.tokens >= 1:
            self.tokens -= 1
            return 0.0
        return (1 - self.tokens) / self.rate


class Admission:
    """The limits of one tenant, as the HTTP layer applies them."""

    def __init__(self, name: str, limits: TenantLimits, resources: Sequence[Resource]) -> None:
        self.name = name
        self.limits = limits
        #: The resources of the tenant's writable groups: what its quotas count.
        self.resources = tuple(resources)
        self._bucket: _Bucket | None = None
        self._in_flight = 0
        self._queue: deque[asyncio.Future[None]] = deque()
        self.watches = 0
        self.connections = 0
        self.bytes = ByteBudget(limits.max_bytes_in_flight)
        self._reserved_objects = 0
        self._reserved_bytes = 0

    @property
    def max_object_bytes(self) -> int:
        return self.limits.max_object_bytes

    @property
    def max_json_depth(self) -> int:
        return self.limits.max_json_depth

    # -- rate and concurrency ------------------------------------------------------------------------

    def check_rate(self) -> None:
        if self._bucket is None:
            self._bucket = _Bucket(self.limits.requests_per_second, self.limits.burst)
        wait = self._bucket.take()
        if wait:
            raise TooManyRequestsError(
                f'tenant "{self.name}" is over its request rate '
                f"({self.limits.requests_per_second:g}/s); slow down",
                retry_after=max(1, math.ceil(wait)),
            )

    @asynccontextmanager
    async def slot(self) -> AsyncIterator[None]:
        """An in-flight slot of this tenant's own, waiting in its own queue when all are busy."""
        if self._in_flight >= self.limits.max_in_flight:
            if len(self._queue) >= self.limits.max_queued:
                raise TooManyRequestsError(
                    f'tenant "{self.name}" has too many requests in flight; retry shortly', retry_after=1
                )
            waiter = asyncio.get_running_loop().create_future()
            self._queue.append(waiter)
            try:
                await waiter  # the slot is handed over by the request that frees it
            except BaseException:
                if waiter.done() and not waiter.cancelled():
                    self._release()  # we were handed a slot but will not use it
                else:
                    self._queue.remove(waiter)
                raise
        else:
            self._in_flight += 1
        try:
            yield
        finally:
            self._release()

    def _release(self) -> None:
        while self._queue:
            waiter = self._queue.popleft()
            if not waiter.done():
                waiter.set_result(None)  # the slot passes on; _in_flight is unchanged
                return
        self._in_flight -= 1

    @asynccontextmanager
    async def watch(self) -> AsyncIterator[None]:
        if self.watches >= self.limits.max_watches:
            raise TooManyRequestsError(
                f'tenant "{self.name}" has {self.watches} open watches, its limit; close some first',
                retry_after=5,
            )
        self.watches += 1
        try:
            yield
        finally:
            self.watches -= 1

    # -- request bodies --------------------------------------------------------------------------------

    def check_body(self, raw_size: int, body: Any) -> None:
        if raw_size > self.limits.max_request_bytes:
            raise RequestEntityTooLargeError(
                f'the request body is larger than tenant "{self.name}"\'s limit of '
                f"{self.limits.max_request_bytes} bytes"
            )
        if json_depth(body, self.limits.max_json_depth) > self.limits.max_json_depth:
            raise BadRequestError(
                f"the request body is nested deeper than {self.limits.max_json_depth} levels"
            )

    # -- quotas -----------------------------------------------------------------------------------------

    def usage(self) -> tuple[int, int]:
        """(objects, bytes) stored across the tenant's writable groups, as the caches see them."""
        objects = sum(r.object_count for r in self.resources)
        size = sum(r.stored_bytes for r in self.resources)
        return objects, size

    @asynccontextmanager
    async def reserve(self, *, objects: int, size: int) -> AsyncIterator[None]:
        """Hold room for a write of ``objects`` more objects and ``size`` more bytes (403 if there is
        none). The caller leaves the block once the cache has seen the write."""
        used_objects, used_bytes = self.usage()
        want_objects = used_objects + self._reserved_objects + max(objects, 0)
        want_bytes = used_bytes + self._reserved_bytes + max(size, 0)
        if objects > 0 and want_objects > self.limits.max_objects:
            raise ForbiddenError(
                f'exceeded quota: tenant "{self.name}" may store {self.limits.max_objects} objects '
                f"and has {used_objects}; nothing was written"
            )
        if size > 0 and want_bytes > self.limits.max_bytes:
            raise ForbiddenError(
                f'exceeded quota: tenant "{self.name}" may store {self.limits.max_bytes} bytes and '
                f"has {used_bytes}; this write needs {size} more; nothing was written"
            )
        held_objects, held_bytes = max(objects, 0), max(size, 0)
        self._reserved_objects += held_objects
        self._reserved_bytes += held_bytes
        try:
            yield
        finally:
            self._reserved_objects -= held_objects
            self._reserved_bytes -= held_bytes


def admissions(authenticator: Authenticator | None, resources: Sequence[Resource]) -> dict[str, Admission]:
    """Each tenant's limits, shared by every front (empty with authentication off)."""
    if authenticator is None:
        return {}
    result = {}
    for tenant in authenticator.tenants.values():
        writable = [r for r in resources if r.spec.group in tenant.groups]
        result[tenant.name] = Admission(tenant.name, authenticator.limits[tenant.name], writable)
    return result
