"""WATCH over HTTP/1.1: a chunked response of JSON event lines, its direct-write fast path, and
parked watches.

While a client keeps up, the cache's dispatch writes each event's chunk — encoded and framed once,
shared by every watcher of the change — straight to the socket, with no task switch per watcher.
Once a client has more than 64 KiB unsent, its events queue in its (bounded) cache watcher instead
and are drained in batches of about 256 KiB, each held in the tenant's byte budget and written under
the write timeout. A watcher that falls too far behind is ended by the cache.

A resource's watch is *parked* once its headers are out (:class:`ParkedWatch`): the connection is
taken from aiohttp (its request handler, parser, request and tasks are let go) and owned by one small
object, to which the dispatch writes directly. A task exists only while there is something to drain
(the initial state, a backlog, the end of the stream); an idle watch holds none, only its place in a
bucket of watches that end (``timeoutSeconds``) about the same time. Such a response says
``Connection: close``: the connection ends with the watch. A watch on a stream of an HTTP/2 connection
is parked the same way (:class:`ParkedStream`): its stream, not the connection, is taken from its
handler, and the connection goes on serving its other streams. A watch that asked for Tables
(:mod:`.tables`), and the namespaces' watch, keep a handler task for their whole life: their lines are
made by it, each event's once for every such watcher.
"""

from __future__ import annotations

import asyncio
import heapq
import logging
import math
import random
from typing import Any, Protocol

from aiohttp import web

from ..api.options import WatchOptions, parse_int
from ..api.watch import Watch, WatchEvent, WatchSink
from ..errors import TooManyRequestsError
from ..tenancy.limits import Admission, ByteBudget
from ..transport.http2 import Stream
from .connections import ConnectionGuard
from .http2 import STREAM_HIGH_WATER, drop_stream, send_events
from .read import PIECE
from .responses import Observation, Responder, drop
from .routes import Target
from .tables import TableAnswer, Tables
from .wire import JSON, chunk, event_chunk, event_chunks, event_lines

__all__ = ["DIRECT_WRITE_HIGH_WATER", "EventSource", "ParkedStream", "ParkedWatch", "Watches"]

log = logging.getLogger(__name__)

DIRECT_WRITE_HIGH_WATER = 64 * 1024
"""Unsent bytes past which a watcher's events queue instead of being written straight to its socket:
what a client that stops reading can hold before its handler waits on it."""


_LAST_CHUNK = b"0\r\n\r\n"


def _write_events(transport: Any, events: list[WatchEvent]) -> bool:
    """Write ``events``' shared chunks to ``transport`` unless it is closing or holds more than
    :data:`DIRECT_WRITE_HIGH_WATER` unsent (False: not written)."""
    # ``transport`` is asyncio's or uvloop's (which does not subclass asyncio.WriteTransport).
    if transport.is_closing() or transport.get_write_buffer_size() > DIRECT_WRITE_HIGH_WATER:
        return False
    try:
        # One event (the common case) without a call more: this runs for every watcher of a change.
        transport.write(event_chunk(events[0]) if len(events) == 1 else event_chunks(events))
    except (OSError, RuntimeError):
        # This runs inside the cache's dispatch: one client's broken socket must not reach it. The
        # events are queued instead, and the connection's owner notices it.
        return False
    return True


def direct_writer(transport: Any) -> WatchSink:
    """The fast path's sink: events' shared chunks written straight to ``transport``."""

    own = getattr(transport, "watch_sink", None)
    if own is not None:  # an HTTP/2 stream (:mod:`.http2`): DATA frames, not chunks
        sink: WatchSink = own()
        return sink

    def write(events: list[WatchEvent]) -> bool:
        return _write_events(transport, events)

    return write


class _HandedOver(web.StreamResponse):
    """A watch response whose connection a :class:`ParkedWatch` took over: the parked watch ends the
    stream, not aiohttp once the handler has returned."""

    async def write_eof(self, data: bytes = b"") -> None:
        return None


class _Deadlines:
    """When parked watches end (``timeoutSeconds``): in buckets, with one loop timer for the earliest
    bucket, instead of one timer per watch (a uvloop timer is ~0.5 KiB). A watch of a minute or less
    ends up to :attr:`FINE` seconds after its deadline, a longer one (the default: 30 to 60 minutes,
    spread on purpose) up to :attr:`COARSE` seconds after it, so that its bucket is shared."""

    FINE = 0.25
    COARSE = 4.0

    __slots__ = ("_buckets", "_keys", "_timer", "_timer_key")

    def __init__(self) -> None:
        self._buckets: dict[float, dict[_Parked, None]] = {}
        self._keys: list[float] = []  # a heap of the buckets' end times
        self._timer: asyncio.TimerHandle | None = None
        self._timer_key = 0.0

    def add(self, parked: _Parked, delay: float) -> dict[_Parked, None]:
        """End ``parked`` in ``delay`` seconds; returns its bucket (it leaves it when closed first)."""
        loop = asyncio.get_running_loop()
        step = self.FINE if delay <= 60 else self.COARSE
        key = math.ceil((loop.time() + delay) / step) * step
        bucket = self._buckets.get(key)
        if bucket is None:
            bucket = self._buckets[key] = {}
            heapq.heappush(self._keys, key)
            if self._timer is None or key < self._timer_key:
                if self._timer is not None:
                    self._timer.cancel()
                self._timer_key = key
                self._timer = loop.call_at(key, self._fire)
        bucket[parked] = None
        return bucket

    def _fire(self) -> None:
        self._timer = None
        loop = asyncio.get_running_loop()
        now = loop.time() + 0.001  # a loop timer may fire up to its clock's resolution early
        keys = self._keys
        while keys and keys[0] <= now:
            for parked in list(self._buckets.pop(heapq.heappop(keys))):
                parked.end()
        if keys:
            self._timer_key = keys[0]
            self._timer = loop.call_at(keys[0], self._fire)

    def close(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None


class _Parked:
    """What a parked watch of either kind is (see the module docstring): the cache watcher's sink
    (direct writes, refused while a drain runs, so that events keep their order), its notify (a drain
    task, only while something is queued or the stream ends), and its place in a deadline bucket. A
    kind says how its events go out and how its stream ends."""

    __slots__ = ("_admission", "_bucket", "_budget", "_draining", "_owner", "_path", "_task", "_watch")

    def __init__(
        self,
        owner: Watches,
        watch: Watch,
        *,
        budget: ByteBudget | None,
        admission: Admission | None,
        path: str,
    ) -> None:
        self._owner = owner
        self._watch = watch
        self._budget = budget
        self._admission = admission
        self._path = path
        self._bucket: dict[_Parked, None] | None = None
        self._task: asyncio.Task[None] | None = None
        self._draining = False

    def _park(self, timeout: float) -> None:
        """Owned by the handler no more: the watch ends after ``timeout`` seconds."""
        if self._admission is not None:
            self._admission.watches += 1  # the handler's hold on the tenant's watch slot ends now
        self._owner.parked[self] = None
        self._bucket = self._owner.deadlines.add(self, timeout)
        self._watch.set_sink(self._write)
        self._watch.set_notify(self._wake)
        self._wake()  # the initial state or replay, if any; an idle watch parks at once

    def end(self) -> None:
        """End the watch (``timeoutSeconds``, shutdown): the stream ends cleanly after what is being
        written."""
        self._leave_bucket()
        self._watch.close()  # the cache watcher ends, which wakes the drain to end the stream
        self._wake()  # (a watch without a cache watcher, ended by an ERROR, has nothing to wake it)

    def abort(self) -> None:
        raise NotImplementedError

    def _leave_bucket(self) -> None:
        if self._bucket is not None:
            self._bucket.pop(self, None)
            self._bucket = None

    def _let_go(self) -> None:
        """The stream is gone: let go of the cache watcher, the bucket, the drain and the watch slot."""
        self._watch.set_notify(None)
        self._watch.close()
        self._leave_bucket()
        task = self._task
        if task is not None and task is not asyncio.current_task():
            task.cancel()
        if self._admission is not None:
            self._admission.watches -= 1
        self._owner.forget(self)

    # -- the dispatch's side (never awaits) ----------------------------------------------------------

    def _write(self, events: list[WatchEvent]) -> bool:
        if self._draining:
            return False  # a drained batch is still being written: later events queue behind it
        return self._write_now(events)

    def _wake(self) -> None:
        if self._draining or self._gone():
            return
        self._draining = True
        self._task = asyncio.get_running_loop().create_task(self._drain(), name="watchcache-watch-drain")

    # -- draining what queued ------------------------------------------------------------------------

    async def _drain(self) -> None:
        out = self._owner.out
        try:
            while not self._gone():
                events = self._watch.poll_events(PIECE)
                if events is None:
                    self._draining = False  # parked: the dispatch writes directly again
                    return
                if not events:
                    await self._end_stream(out.write_timeout)
                    return
                size = sum(len(event.raw) for event in events)
                async with out.held(self._budget, size):
                    if self._gone():
                        return  # dropped while waiting for the budget
                    self._send(event_lines(events))
                    if not await self._sent(out.write_timeout):
                        return
        except TooManyRequestsError:
            self.abort()  # the tenant's byte budget stayed full for the whole write timeout
        except Exception:
            log.exception("%s: watch stream failed", self._path)
            self.abort()
        finally:
            self._task = None

    # -- what a kind says ----------------------------------------------------------------------------

    def _gone(self) -> bool:
        """The stream can take nothing more (closing, closed, reset)."""
        raise NotImplementedError

    def _write_now(self, events: list[WatchEvent]) -> bool:
        """The dispatch's direct write of ``events``' shared bytes; False: not written."""
        raise NotImplementedError

    def _send(self, lines: bytes) -> None:
        """Write a drained batch's ``lines``."""
        raise NotImplementedError

    async def _sent(self, write_timeout: float) -> bool:
        """Wait until the client takes more; False (and the watch dropped) when it has not read for
        ``write_timeout`` seconds, or the stream is gone."""
        raise NotImplementedError

    async def _end_stream(self, write_timeout: float) -> None:
        """End the stream cleanly."""
        raise NotImplementedError


class ParkedWatch(_Parked, asyncio.Protocol):
    """A resource's watch that owns its connection once the headers are out (see the module
    docstring): the transport's protocol as well as a parked watch."""

    __slots__ = ("_closer", "_drain_waiter", "_paused", "_transport")

    def __init__(
        self,
        owner: Watches,
        watch: Watch,
        transport: Any,
        *,
        budget: ByteBudget | None,
        admission: Admission | None,
        path: str,
    ) -> None:
        super().__init__(owner, watch, budget=budget, admission=admission, path=path)
        self._transport = transport
        self._closer: asyncio.TimerHandle | None = None
        self._drain_waiter: asyncio.Future[None] | None = None
        # Only headers (far below the transport's high-water mark) were written before the take-over,
        # so the transport has not paused the protocol: it tells this one of any pause from now on.
        self._paused = False

    def take_over(self, request: web.Request, timeout: float) -> None:
        """Take ``request``'s connection from aiohttp; the watch ends after ``timeout`` seconds."""
        protocol = request.protocol
        self._owner.connections.hand_over(protocol, self)
        protocol.keep_alive(False)  # cancels its keep-alive timer
        # aiohttp's handler ends with the request (its response says Connection: close) and must
        # neither write to nor close the connection: it is this watch's now.
        protocol.transport = None
        self._transport.set_protocol(self)
        self._park(timeout)

    def abort(self) -> None:
        self._transport.abort()

    def _gone(self) -> bool:
        return bool(self._transport.is_closing())

    def _write_now(self, events: list[WatchEvent]) -> bool:
        return _write_events(self._transport, events)

    def _send(self, lines: bytes) -> None:
        self._transport.write(chunk(lines))

    async def _sent(self, write_timeout: float) -> bool:
        if not self._paused:
            return True
        waiter = self._drain_waiter = asyncio.get_running_loop().create_future()
        try:
            async with asyncio.timeout(write_timeout):
                await waiter
        except TimeoutError:
            log.info("dropping a connection whose client stopped reading: %s", self._path)
            self.abort()
            return False
        finally:
            self._drain_waiter = None
        return True

    async def _end_stream(self, write_timeout: float) -> None:
        """The last chunk, then the connection closes once it is flushed (or is dropped after the
        write timeout)."""
        transport = self._transport
        if transport.is_closing():
            return
        transport.write(_LAST_CHUNK)
        transport.close()
        self._closer = asyncio.get_running_loop().call_later(write_timeout, transport.abort)

    # -- asyncio.Protocol ----------------------------------------------------------------------------

    def data_received(self, data: bytes) -> None:
        """Nothing is read once the response has started (it ends the connection): ignored."""

    def eof_received(self) -> bool | None:
        return None  # the client is done: close (as aiohttp does)

    def pause_writing(self) -> None:
        self._paused = True

    def resume_writing(self) -> None:
        self._paused = False
        waiter = self._drain_waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def connection_lost(self, exc: BaseException | None) -> None:
        if self._closer is not None:
            self._closer.cancel()
            self._closer = None
        if self in self._owner.parked:
            self._let_go()


class ParkedStream(_Parked):
    """A resource's watch on a stream of an HTTP/2 connection once its headers are out: what
    :class:`ParkedWatch` is for a connection, for one stream of a shared one. The stream's handler
    task ends; the dispatch writes each event's shared line as DATA of the stream. The connection is
    not this watch's: it stays the connection's (counted by the guard as one, closed when idle)."""

    __slots__ = ("_stream",)

    def __init__(
        self,
        owner: Watches,
        watch: Watch,
        stream: Stream,
        *,
        budget: ByteBudget | None,
        admission: Admission | None,
        path: str,
    ) -> None:
        super().__init__(owner, watch, budget=budget, admission=admission, path=path)
        self._stream = stream

    def take_over(self, timeout: float) -> None:
        """Take the stream from its handler; the watch ends after ``timeout`` seconds."""
        self._stream.on_close = self._closed
        self._park(timeout)

    def abort(self) -> None:
        drop_stream(self._stream)

    def _gone(self) -> bool:
        return self._stream.closed

    def _write_now(self, events: list[WatchEvent]) -> bool:
        return send_events(self._stream, events)

    def _send(self, lines: bytes) -> None:
        self._stream.send(lines)

    async def _sent(self, write_timeout: float, limit: int = STREAM_HIGH_WATER) -> bool:
        try:
            async with asyncio.timeout(write_timeout):
                await self._stream.drain(limit)
        except TimeoutError:
            log.info("dropping a watch stream whose client stopped reading: %s", self._path)
            self.abort()
            return False
        return not self._stream.closed

    async def _end_stream(self, write_timeout: float) -> None:
        """END_STREAM once what is queued is out; then the connection forgets the stream."""
        stream = self._stream
        stream.end([])
        if await self._sent(write_timeout, 0):
            stream.connection.streams.pop(stream.id, None)
            stream.on_close = None
            self._closed()
            stream.connection.idle()

    def _closed(self) -> None:
        """The stream is done (ended, reset by the client, its connection gone)."""
        if self in self._owner.parked:
            self._let_go()


class EventSource(Protocol):
    """What a watch stream is written from: a resource's :class:`Watch`, or the namespaces' watch."""

    async def next_events(self, max_bytes: int = ...) -> list[WatchEvent]: ...

    def set_sink(self, sink: WatchSink) -> None: ...


class Watches:
    """The WATCH handler, and the parked watches it owns."""

    def __init__(
        self, out: Responder, min_request_timeout: float, tables: Tables, *, connections: ConnectionGuard
    ) -> None:
        self.out = out
        self.connections = connections
        self._min_request_timeout = min_request_timeout
        self._tables = tables
        #: Watches that own their connection or stream (see :class:`ParkedWatch`, :class:`ParkedStream`).
        self.parked: dict[_Parked, None] = {}
        self.deadlines = _Deadlines()
        self._all_closed: asyncio.Future[None] | None = None

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
        parked = False
        try:
            stream = getattr(request.transport, "stream", None)  # an HTTP/2 request's
            if not isinstance(stream, Stream):
                stream = None
            if table is None and (stream is not None or isinstance(request.protocol, web.RequestHandler)):
                response, parked = await self._park(
                    request, watch, target=target, timeout=timeout_s, stream=stream
                )
                return response
            budget = target.admission.bytes if target.admission is not None else None
            return await self.stream(
                request, watch, budget=budget, observation=target.observation, timeout=timeout_s, table=table
            )
        finally:
            if not parked:
                watch.close()

    async def _park(
        self, request: web.Request, watch: Watch, *, target: Target, timeout: float, stream: Stream | None
    ) -> tuple[web.StreamResponse, bool]:
        """Send the headers and hand the connection to a :class:`ParkedWatch`, or the HTTP/2 ``stream``
        to a :class:`ParkedStream` (True); or give up on a client gone or not reading (False)."""
        response = _HandedOver(status=200, headers={"Content-Type": JSON})
        if stream is None:
            response.enable_chunked_encoding()
            response.force_close()  # Connection: close; the connection ends with the watch
        try:
            if not await self.out.write_or_drop(request, response.prepare(request)):
                return response, False
        except ConnectionResetError:
            drop(request)
            return response, False
        if target.observation is not None:
            target.observation.finish(200)
        admission = target.admission
        budget = admission.bytes if admission is not None else None
        path = request.path[:200]
        if stream is not None:
            if stream.closed:
                return response, False
            ParkedStream(self, watch, stream, budget=budget, admission=admission, path=path).take_over(
                timeout
            )
            return response, True
        transport = request.transport
        if transport is None or transport.is_closing():
            return response, False
        parked = ParkedWatch(self, watch, transport, budget=budget, admission=admission, path=path)
        parked.take_over(request, timeout)
        return response, True

    def forget(self, parked: _Parked) -> None:
        """``parked``'s connection (or stream) is closed."""
        if parked in self.parked:
            del self.parked[parked]
            if isinstance(parked, ParkedWatch):  # it owned its connection
                self.connections.closed(parked)
        if not self.parked and self._all_closed is not None and not self._all_closed.done():
            self._all_closed.set_result(None)

    async def close(self) -> None:
        """End every parked watch (each stream ends cleanly) and wait for their connections to close;
        those still open after the write timeout are dropped."""
        self.deadlines.close()
        for parked in list(self.parked):
            parked.end()
        if not self.parked:
            return
        self._all_closed = asyncio.get_running_loop().create_future()
        try:
            async with asyncio.timeout(self.out.write_timeout):
                await self._all_closed
        except TimeoutError:
            for parked in list(self.parked):
                parked.abort()

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
        out = self.out
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
                        data = event_lines(events)
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
