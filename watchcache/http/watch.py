"""WATCH over HTTP/1.1: a chunked response of JSON event lines, and its direct-write fast path.

While a client keeps up, the cache's dispatch writes each event's chunk — encoded and framed once,
shared by every watcher of the change — straight to the socket, with no task switch per watcher.
Once a client has more than 64 KiB unsent, its events queue in its (bounded) cache watcher instead
and this handler drains them in batches of about 256 KiB, each held in the tenant's byte budget and
written under the write timeout. A watcher that falls too far behind is ended by the cache. A
watch that asked for Tables (:mod:`.tables`) always takes the second path: its lines are made by its
handler, each event's once for every such watcher.
"""

from __future__ import annotations

import asyncio
import logging
import random
from typing import Any, Protocol

from aiohttp import web

from ..api.options import WatchOptions, parse_int
from ..api.watch import WatchEvent, WatchSink
from ..errors import TooManyRequestsError
from ..tenancy.limits import ByteBudget
from .read import PIECE
from .responses import Observation, Responder, drop
from .routes import Target
from .tables import TableAnswer, Tables
from .wire import JSON, event_chunk, event_line

__all__ = ["DIRECT_WRITE_HIGH_WATER", "EventSource", "Watches"]

log = logging.getLogger(__name__)

DIRECT_WRITE_HIGH_WATER = 64 * 1024
"""Unsent bytes past which a watcher's events queue instead of being written straight to its socket:
what a client that stops reading can hold before its handler waits on it."""


def direct_writer(transport: Any) -> WatchSink:
    """The fast path's sink: events' shared chunks written straight to ``transport``."""

    own = getattr(transport, "watch_sink", None)
    if own is not None:  # an HTTP/2 stream (:mod:`.http2`): DATA frames, not chunks
        sink: WatchSink = own()
        return sink

    # ``transport`` is asyncio's or uvloop's (which does not subclass asyncio.WriteTransport).
    def write(events: list[WatchEvent]) -> bool:
        if transport.is_closing() or transport.get_write_buffer_size() > DIRECT_WRITE_HIGH_WATER:
            return False
        try:
            if len(events) == 1:
                transport.write(event_chunk(events[0]))
            else:
                transport.write(b"".join([event_chunk(event) for event in events]))
        except (OSError, RuntimeError):
            # This runs inside the cache's dispatch: one client's broken socket must not reach
            # it. The events are queued instead, and the handler notices the connection.
            return False
        return True

    return write


class EventSource(Protocol):
    """What a watch stream is written from: a resource's :class:`Watch`, or the namespaces' watch."""

    async def next_events(self, max_bytes: int = ...) -> list[WatchEvent]: ...

    def set_sink(self, sink: WatchSink) -> None: ...


class Watches:
    """The WATCH handler."""

    def __init__(self, out: Responder, min_request_timeout: float, tables: Tables) -> None:
        self._out = out
        self._min_request_timeout = min_request_timeout
        self._tables = tables

    def timeout(self, request: web.Request) -> float:
        """How long a watch may last: ``timeoutSeconds``, else a random time in [min, 2 min]."""
        timeout = parse_int(request.query, "timeoutSeconds")
        if not timeout:
            low = self._min_request_timeout
            return low * (1 + random.random())
        return float(timeout)

    async def watch(self, request: web.Request, target: Target) -> web.StreamResponse:
        options = WatchOptions.from_query(
            request.query, namespace=target.namespace, version=target.version, name=target.name
        )
        table = self._tables.answer(target.resource.spec, request.headers.get("Accept"), request.query)
        timeout_s = self.timeout(request)
        watch = target.resource.watch_with(options)
        await watch.open()  # errors (400, 504) are still plain responses
        try:
            budget = target.admission.bytes if target.admission is not None else None
            return await self.stream(
                request, watch, budget=budget, observation=target.observation, timeout=timeout_s, table=table
            )
        finally:
            watch.close()

    async def stream(
        self,
        request: web.Request,
        watch: EventSource,
        *,
        budget: ByteBudget | None,
        observation: Observation | None,
        timeout: float,
        table: TableAnswer | None = None,
    ) -> web.StreamResponse:
        """Write an opened watch's events as a chunked response until it ends or ``timeout``."""
        out = self._out
        response = web.StreamResponse(status=200, headers={"Content-Type": JSON})
        response.enable_chunked_encoding()
        try:
            # Sends the headers now: direct writes may follow.
            if not await out.write_or_drop(request, response.prepare(request)):
                return response
            if observation is not None:
                observation.finish(200)
            if request.transport is not None and table is None:
                watch.set_sink(direct_writer(request.transport))
            columns = True  # a Table watch's first Table carries the column definitions
            # timeoutSeconds bounds the wait for events only: cancelling a blocked write would leave
            # aiohttp's drain waiter cancelled, and the final write_eof() could then never finish.
            deadline = asyncio.get_running_loop().time() + timeout
            while True:
                try:
                    async with asyncio.timeout_at(deadline):
                        events = await watch.next_events(PIECE)
                except TimeoutError:
                    break  # timeoutSeconds elapsed: end the stream cleanly
                if not events:
                    break
                size = sum(len(event.raw) for event in events)
                async with out.held(budget, size):
                    if table is None:
                        data = b"".join([event_line(event) for event in events])
                        extra = 0
                    else:
                        data, columns = table.event_lines(events, columns=columns)
                        extra = max(0, len(data) - size)  # cells besides the objects
                    async with out.held(budget, extra):
                        if not await out.write_or_drop(request, response.write(data)):
                            return response
        except (ConnectionResetError, TooManyRequestsError):
            # A reset client; or one whose tenant's budget stayed full for the whole write timeout.
            drop(request)
            return response
        except Exception:
            # The headers are out: a Status can no longer be sent, so end the stream.
            log.exception("%s: watch stream failed", request.path)
            drop(request)
            return response
        await out.write_or_drop(request, response.write_eof())
        return response
