"""Writing responses so that no client can hold the server: the write timeout, the byte budget, and
the count of each request in metrics and logs.

Every response is written under ``write_timeout``: a client that does not read is dropped. The bytes a
tenant's responses hold while being written come out of the tenant's byte budget, taken before each
piece is built and given back once the socket has taken it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Awaitable

from aiohttp import web

from ..api.spec import ResourceSpec
from ..tenancy.limits import ByteBudget
from .metrics import Metrics

__all__ = ["Observation", "Responder", "drop"]

log = logging.getLogger(__name__)


def drop(request: web.BaseRequest) -> None:
    """Close a request's connection at once (no clean end is possible any more)."""
    if request.transport is not None:
        request.transport.abort()


class Responder:
    """Writes responses under the write timeout and byte budgets (see the module docstring)."""

    def __init__(self, write_timeout: float) -> None:
        self.write_timeout = write_timeout

    async def deliver(
        self, request: web.BaseRequest, response: web.StreamResponse, budget: ByteBudget | None
    ) -> None:
        """Write a whole response now, its body held in ``budget``; a streaming response has been
        written by its handler already."""
        if response.prepared:
            return
        body = response.body if isinstance(response, web.Response) else None
        size = len(body) if isinstance(body, bytes) else 0
        async with self.held(budget, size):
            await self.write_or_drop(request, self._send(request, response))

    @staticmethod
    async def _send(request: web.BaseRequest, response: web.StreamResponse) -> None:
        await response.prepare(request)
        await response.write_eof()

    @contextlib.asynccontextmanager
    async def held(self, budget: ByteBudget | None, size: int) -> AsyncIterator[None]:
        """Hold ``size`` bytes of ``budget`` (waiting up to the write timeout for room)."""
        if budget is None or not size:
            yield
            return
        async with budget.hold(size, self.write_timeout):
            yield

    async def write_or_drop(self, request: web.BaseRequest, write: Awaitable[object]) -> bool:
        """Await a response write; a client that has not read for ``write_timeout`` seconds has its
        connection dropped (False). A timed-out write cannot be resumed (aiohttp's drain waiter is
        gone), so the connection cannot be reused either."""
        try:
            async with asyncio.timeout(self.write_timeout):
                await write
        except TimeoutError:
            log.info("dropping a connection whose client stopped reading: %s", request.path[:200])
            drop(request)
            return False
        return True


class Observation:
    """Counts one request in the metrics and logs it, once: when its answer is decided — for a
    WATCH, when the stream starts (its duration is the set-up time)."""

    __slots__ = ("_metrics", "_request", "_spec", "_started", "done", "verb")

    def __init__(self, metrics: Metrics, request: web.BaseRequest, spec: ResourceSpec) -> None:
        self._metrics = metrics
        self._request = request
        self._spec = spec
        self._started = time.perf_counter()
        self.verb = "unknown"
        self.done = False

    def finish(self, code: int) -> None:
        if self.done:
            return
        self.done = True
        elapsed = time.perf_counter() - self._started
        spec = self._spec
        self._metrics.observe(
            verb=self.verb, group=spec.group, resource=spec.resource, code=code, seconds=elapsed
        )
        log.debug(
            "request",
            extra={
                "verb": self.verb,
                "path": self._request.path,
                "code": code,
                "ms": round(elapsed * 1000, 2),
            },
        )
