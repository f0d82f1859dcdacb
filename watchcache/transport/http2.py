"""HTTP/2 connections on asyncio: the ``h2`` library for the protocol, and a fast path for DATA.

:class:`Connection` is an asyncio protocol holding one ``h2`` connection: h2 parses every frame the
client sends, keeps the streams' states, answers SETTINGS and PINGs, and encodes headers. A request
becomes a :class:`Stream` handed to the server's handler, which reads the body as it arrives and answers
with headers, DATA and trailers.

DATA is the hot path (a watch sends a message per watcher per change): :meth:`Stream.send` frames it
itself — a 9-byte frame header before bytes that may be shared by many streams — and writes it to the
socket, keeping h2's flow-control windows exact by debiting them by hand, instead of paying for h2's
per-frame objects. Everything a connection writes in one turn of the event loop goes out in one
``writelines`` at the end of it: a change sent to a hundred watches of one connection is one system
call, not a hundred. What a window does not allow yet waits in the stream (bounded by the caller) and
goes out when the client opens it. A connection whose client stops reading is left to the caller's
write timeout (:meth:`Stream.drain`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import ssl
from collections import deque
from collections.abc import Awaitable, Callable
from typing import Any, TypeAlias

import h2.config
import h2.connection
import h2.events
import h2.exceptions
import h2.settings

__all__ = ["Connection", "Handler", "Piece", "Stream", "data_header", "split"]

log = logging.getLogger(__name__)

_DATA, _END_STREAM = 0x0, 0x1
# Stop writing to the socket directly past this much data the kernel has not taken: the rest waits
# (in its stream, bounded by the caller) for the client to read.
_HIGH_WATER = 256 * 1024
# At most this much is gathered for one turn's write.
_CORK_LIMIT = 1024 * 1024

Handler = Callable[["Stream"], Awaitable[None]]
"""Serves one request stream; returns (or raises) when the stream is done."""


def data_header(stream_id: int, size: int, *, end_stream: bool = False) -> bytes:
    """The 9-byte header of an HTTP/2 DATA frame of ``size`` bytes: length (24 bits), type, flags, and
    the stream id (31 bits)."""
    flags = _END_STREAM if end_stream else 0
    return (size << 48 | _DATA << 40 | flags << 32 | stream_id & 0x7FFFFFFF).to_bytes(9, "big")


Piece: TypeAlias = "bytes | memoryview"
"""A piece of DATA: bytes, or a view into bytes (a message split across frames is never copied)."""


def split(parts: list[Piece], size: int) -> tuple[list[Piece], list[Piece]]:
    """``parts`` as its first ``size`` bytes and the rest, cutting at most one piece (into views)."""
    head: list[Piece] = []
    taken = 0
    for i, part in enumerate(parts):
        room = size - taken
        if len(part) < room:
            head.append(part)
            taken += len(part)
            continue
        if len(part) == room:
            head.append(part)
            return head, parts[i + 1 :]
        view = memoryview(part)
        head.append(view[:room])
        return head, [view[room:], *parts[i + 1 :]]
    return head, []


class Stream:
    """One request of a connection: its headers, its body as it comes, and the way to answer.

    A stream is small while it waits (an idle watch is one): its body's queue, its unsent DATA's queue
    and the futures a waiting reader and writer sleep on are made only when there is something to hold
    or someone waiting."""

    __slots__ = (
        "_body",
        "_pending",
        "_pending_size",
        "_trailers",
        "_waiters",
        "body_ended",
        "body_received",
        "closed",
        "connection",
        "ended",
        "headers",
        "id",
        "long_lived",
        "on_close",
    )

    def __init__(self, connection: Connection, stream_id: int, headers: list[tuple[bytes, bytes]]) -> None:
        self.connection = connection
        self.id = stream_id
        self.headers = headers
        # The body as it came, each piece with its flow-controlled length: acknowledged (the client's
        # window reopened) only when read, so a client can never have more than its window unread.
        self._body: deque[tuple[bytes, int]] | None = None
        self.body_ended = False
        """The client has ended its side (the body may still be queued for :meth:`read`)."""
        self.body_received = 0
        """Bytes of the body received so far."""
        # DATA not written yet, each message as its parts (often shared by many streams: held, not
        # copied) and its size.
        self._pending: deque[tuple[list[Piece], int]] | None = None
        self._pending_size = 0
        # What a reader waiting for the body and a writer waiting for the window (both at once in a
        # bidirectional call) sleep on.
        self._waiters: list[asyncio.Future[None]] | None = None
        self._trailers: list[tuple[bytes, bytes]] | None = None
        self.closed = False
        """The client reset the stream, or the connection is gone."""
        self.ended = False
        """We have ended our side."""
        self.long_lived = False
        """Set by the handler for a stream that lasts until the client ends it (a watch): not waited
        for when the connection shuts."""
        self.on_close: Callable[[], None] | None = None
        """Set by whoever takes the stream over from its handler (a parked watch): called once when
        the stream closes (the client reset it, the connection is gone). Such a stream outlives its
        handler: the handler's end neither resets it nor lets the connection forget it."""

    # -- the request -------------------------------------------------------------------------------

    @property
    def path(self) -> str:
        return (self.header(b":path") or b"").decode("ascii", "replace")

    def header(self, name: bytes) -> bytes | None:
        return next((v for k, v in self.headers if k == name), None)

    async def read(self) -> bytes | None:
        """The next piece of the body as it arrived; None once the client ended it (or left)."""
        while True:
            body = self._body
            if body:
                data, flow_controlled = body.popleft()
                if not self.closed:
                    self.connection.acknowledge(self.id, flow_controlled)
                return data
            if self.body_ended or self.closed:
                return None
            await self._wait()

    def discard(self) -> None:
        """The rest of the body will not be read: acknowledge what has come of it (what comes later
        is acknowledged by the connection once it no longer holds the stream)."""
        body, self._body = self._body, None
        while body:
            _, flow_controlled = body.popleft()
            if not self.closed:
                self.connection.acknowledge(self.id, flow_controlled)

    def _received(self, data: bytes | None, flow_controlled: int = 0) -> None:
        if data is None:
            self.body_ended = True
        else:
            self.body_received += len(data)
            if self._body is None:
                self._body = deque()
            self._body.append((data, flow_controlled))
        self._wake()

    # -- the answer -------------------------------------------------------------------------------------

    def send_headers(self, headers: list[tuple[bytes, bytes]], *, end_stream: bool = False) -> None:
        if self.closed or self.ended:
            return
        conn = self.connection
        conn.h2.send_headers(self.id, headers, end_stream=end_stream)
        conn.flush()
        self.ended = end_stream

    def send(self, payload: bytes) -> None:
        """Queue ``payload`` as DATA, written now as far as the flow-control windows allow."""
        if self.closed or self.ended:
            return
        self._queue([payload], len(payload))
        self.connection.push(self)

    def send_parts(self, parts: list[Piece], size: int) -> None:
        """Queue DATA of ``size`` bytes made of ``parts``, which may be shared by many streams: they are
        held as they are, never joined, and handed to the socket as one vectored write with the frame
        header. When nothing is queued ahead and the windows allow, it goes out in this turn's write."""
        if self.closed or self.ended:
            return
        if self._pending:  # queued ahead, so this stream is already waiting for its turn
            self._queue(parts, size)
        elif not self.connection.write_frame(self, parts, size):
            self._queue(parts, size)
            self.connection.hold(self)

    def _queue(self, parts: list[Piece], size: int) -> None:
        if self._pending is None:
            self._pending = deque()
        self._pending.append((parts, size))
        self._pending_size += size

    @property
    def unsent(self) -> int:
        """Bytes queued on this stream that the client's window has not let out yet."""
        return self._pending_size

    async def drain(self, limit: int) -> None:
        """Wait until at most ``limit`` bytes are queued on the stream (the client reads)."""
        while self._pending_size > limit and not self.closed:
            await self._wait()

    def end(self, trailers: list[tuple[bytes, bytes]]) -> None:
        """End our side with ``trailers`` once every queued DATA is out (none: an empty DATA frame
        with END_STREAM)."""
        if self.closed or self.ended:
            return
        self._trailers = trailers
        self.ended = True
        self.connection.push(self)

    def reset(self, code: int = 0x8) -> None:
        """RST_STREAM (CANCEL by default)."""
        if self.closed:
            return
        conn = self.connection
        with contextlib.suppress(h2.exceptions.H2Error):
            conn.h2.reset_stream(self.id, code)
        conn.flush()
        self._close()

    def _close(self) -> None:
        """The stream is closed (reset, or its connection gone): wake whoever waits on it, tell its
        owner."""
        if self.closed:
            return
        self.closed = True
        self._wake()
        on_close, self.on_close = self.on_close, None
        if on_close is not None:
            on_close()

    async def _wait(self) -> None:
        """Sleep until :meth:`_wake` (body came, the window opened, the stream closed); whoever is
        woken checks again what it waits for."""
        waiter = asyncio.get_running_loop().create_future()
        if self._waiters is None:
            self._waiters = []
        waiters = self._waiters
        waiters.append(waiter)
        try:
            await waiter
        finally:
            if waiter in waiters:  # cancelled before a wake
                waiters.remove(waiter)
                if not waiters and self._waiters is waiters:
                    self._waiters = None

    def _wake(self) -> None:
        """Wake every waiter: the reader and the writer wait for different things."""
        waiters, self._waiters = self._waiters, None
        for waiter in waiters or ():
            if not waiter.done():
                waiter.set_result(None)


class Connection(asyncio.Protocol):
    """One HTTP/2 connection (see the module docstring)."""

    def __init__(
        self, handler: Handler, *, settings: dict[int, int] | None = None, validate: bool = False
    ) -> None:
        """``validate``: h2 checks each request's headers (pseudo-headers, names, connection-specific
        fields) and answers a malformed one with a protocol error."""
        config = h2.config.H2Configuration(
            client_side=False, header_encoding=None, validate_inbound_headers=validate
        )
        self.h2 = h2.connection.H2Connection(config)
        self._handler = handler
        self._settings = settings or {}
        self.transport: Any = None
        self.streams: dict[int, Stream] = {}
        self._tasks: dict[asyncio.Task[None], Stream] = {}
        self._blocked: dict[int, Stream] = {}
        self.peer_common_name: str | None = None
        self.closed = False
        self._out: list[Piece] = []
        self._out_size = 0
        self.lost = asyncio.Event()
        """Set once the connection is gone (:meth:`connection_lost`)."""

    # -- asyncio protocol ---------------------------------------------------------------------------

    def connection_made(self, transport: Any) -> None:
        self.transport = transport
        cert = transport.get_extra_info("peercert")
        if cert:  # present only when the client CA verified it
            for rdn in cert.get("subject", ()):
                for key, value in rdn:
                    if key == "commonName":
                        self.peer_common_name = value
        self.h2.initiate_connection()
        if self._settings:
            self.h2.update_settings(self._settings)
        self.flush()

    def connection_lost(self, exc: BaseException | None) -> None:
        self.closed = True
        self.lost.set()
        for stream in list(self.streams.values()):
            stream._received(None)
            stream._close()
        for task in self._tasks:
            task.cancel()

    def pause_writing(self) -> None:
        pass

    def resume_writing(self) -> None:
        self._unblock()

    def data_received(self, data: bytes) -> None:
        try:
            events = self.h2.receive_data(data)
        except h2.exceptions.ProtocolError as err:
            log.info("HTTP/2 protocol error from a client: %s", err)
            self.flush()
            self._write_out()
            self.transport.close()
            return
        for event in events:
            self._event(event)
        self.flush()

    def _event(self, event: Any) -> None:
        if isinstance(event, h2.events.RequestReceived):
            stream = Stream(self, event.stream_id, event.headers)
            self.streams[event.stream_id] = stream
            task = asyncio.get_running_loop().create_task(
                self._serve(stream), name=f"h2-stream {event.stream_id}"
            )
            self._tasks[task] = stream
            task.add_done_callback(self._forget)
            if event.stream_ended is not None:
                stream._received(None)
        elif isinstance(event, h2.events.DataReceived):
            receiver = self.streams.get(event.stream_id)
            if receiver is None:
                self.acknowledge(event.stream_id, event.flow_controlled_length)
            else:
                receiver._received(event.data, event.flow_controlled_length)
                if event.stream_ended is not None:
                    receiver._received(None)
        elif isinstance(event, h2.events.StreamEnded):
            ended = self.streams.get(event.stream_id)
            if ended is not None:
                ended._received(None)
        elif isinstance(event, h2.events.StreamReset):
            reset = self.streams.pop(event.stream_id, None)
            if reset is not None:
                reset._received(None)
                reset._close()
        elif isinstance(event, h2.events.WindowUpdated | h2.events.RemoteSettingsChanged):
            self._unblock()
        elif isinstance(event, h2.events.ConnectionTerminated):
            self._write_out()
            self.transport.close()

    def _forget(self, task: asyncio.Task[None]) -> None:
        self._tasks.pop(task, None)

    async def _serve(self, stream: Stream) -> None:
        try:
            await self._handler(stream)
        except asyncio.CancelledError:
            stream.reset()
            raise
        except Exception:
            log.exception("HTTP/2 stream %d failed", stream.id)
            stream.reset(0x2)  # INTERNAL_ERROR
        finally:
            if stream.on_close is None:  # not taken over (see Stream.on_close)
                if not stream.ended:
                    stream.reset()
                self.streams.pop(stream.id, None)

    async def shut(self, grace: float) -> None:
        """GOAWAY; give the requests in flight ``grace`` seconds, cancel the rest and the long-lived
        ones; close, and abort if the socket does not close at once (a client that stopped reading
        cannot keep it)."""
        if self.transport is None or self.closed:
            return
        with contextlib.suppress(h2.exceptions.H2Error):
            self.h2.close_connection()
        self.flush()
        calls = {task for task, stream in self._tasks.items() if not stream.long_lived}
        if calls:
            await asyncio.wait(calls, timeout=grace)
        for task in list(self._tasks):
            task.cancel()
        self._write_out()
        self.transport.close()
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(1.0):
                await self.lost.wait()
        if not self.closed:
            self.transport.abort()
            await self.lost.wait()

    def idle(self) -> None:
        """Called when a stream that outlived its handler is done (see :attr:`Stream.on_close`); a
        subclass may close a connection left without streams."""

    def acknowledge(self, stream_id: int, size: int) -> None:
        """``size`` bytes of ``stream_id``'s body were consumed: reopen the client's windows."""
        if size and not self.closed:
            with contextlib.suppress(h2.exceptions.H2Error):
                self.h2.acknowledge_received_data(size, stream_id)
            self.flush()

    # -- writing --------------------------------------------------------------------------------------

    def _write(self, data: bytes) -> None:
        """Queue ``data`` for this turn's one write (see the module docstring)."""
        if not self._out:
            asyncio.get_running_loop().call_soon(self._write_out)
        self._out.append(data)
        self._out_size += len(data)

    def _write_parts(self, header: bytes, parts: list[Piece], size: int) -> None:
        """Queue a frame, its header and its parts, for this turn's one (vectored) write."""
        if not self._out:
            asyncio.get_running_loop().call_soon(self._write_out)
        self._out.append(header)
        self._out.extend(parts)
        self._out_size += len(header) + size

    def _write_out(self) -> None:
        out, self._out, self._out_size = self._out, [], 0
        if out and self.transport is not None and not self.transport.is_closing():
            self.transport.writelines(out)
            if self._blocked and not self._full():
                self._unblock()  # streams held back by this turn's writes, not by their windows

    def _full(self) -> bool:
        """Whether the socket is behind (the client reads slowly) or this turn has gathered enough."""
        return self._out_size > _CORK_LIMIT or self.transport.get_write_buffer_size() > _HIGH_WATER

    def flush(self) -> None:
        """Write what h2 has to send (control frames, headers)."""
        data = self.h2.data_to_send()
        if data and self.transport is not None and not self.transport.is_closing():
            self._write(data)

    def write_frame(self, stream: Stream, parts: list[Piece], size: int) -> bool:
        """Write ``parts`` (``size`` bytes) as DATA of ``stream`` — one frame, or as many as the peer's
        frame size asks, cut into views — if the windows and the socket's buffer allow all of it now;
        False (nothing written) if not."""
        if self.closed:
            return False
        h2conn = self.h2
        state = h2conn.streams.get(stream.id)
        if (
            state is None
            or size > h2conn.outbound_flow_control_window
            or size > state.outbound_flow_control_window
            or self._full()
        ):
            return False
        # Debit h2's windows as its own send_data would, so they stay exact.
        h2conn.outbound_flow_control_window -= size
        state.outbound_flow_control_window -= size
        limit = h2conn.max_outbound_frame_size
        while size > limit:
            head, parts = split(parts, limit)
            self._write_parts(data_header(stream.id, limit), head, limit)
            size -= limit
        self._write_parts(data_header(stream.id, size), parts, size)
        return True

    def push(self, stream: Stream) -> None:
        """Write as much of ``stream``'s queued DATA as the windows allow (then its trailers)."""
        if self.closed or stream.closed:
            self._blocked.pop(stream.id, None)  # a reset stream's queued DATA is never sent
            return
        h2conn = self.h2
        state = h2conn.streams.get(stream.id)
        if state is None:
            self._blocked.pop(stream.id, None)
            stream._close()
            return
        frame_limit = h2conn.max_outbound_frame_size
        pending = stream._pending
        while pending:
            window = min(h2conn.outbound_flow_control_window, state.outbound_flow_control_window)
            if window <= 0 or self._full():
                break
            parts, whole = pending[0]
            size = min(whole, window, frame_limit)
            if size < whole:  # more than one frame or the window allows: cut (views, no copy)
                parts, rest = split(parts, size)
                pending[0] = (rest, whole - size)
            else:
                pending.popleft()
            self._write_parts(data_header(stream.id, size), parts, size)
            stream._pending_size -= size
            # Debit h2's windows as its own send_data would, so they stay exact.
            h2conn.outbound_flow_control_window -= size
            state.outbound_flow_control_window -= size
        if pending:
            self._blocked[stream.id] = stream
        else:
            stream._pending = None  # an idle stream holds no queue
            self._blocked.pop(stream.id, None)
            if stream._trailers is not None:
                trailers, stream._trailers = stream._trailers, None
                with contextlib.suppress(h2.exceptions.H2Error):
                    if trailers:
                        h2conn.send_headers(stream.id, trailers, end_stream=True)
                    else:
                        h2conn.end_stream(stream.id)
                self.flush()
        stream._wake()

    def hold(self, stream: Stream) -> None:
        """``stream`` has DATA queued that :meth:`write_frame` could not write: write what its windows
        allow now, or, while the socket is behind anyway, just remember it for :meth:`_unblock`."""
        if self._full():
            self._blocked[stream.id] = stream
        else:
            self.push(stream)

    def _unblock(self) -> None:
        """Write the held-back streams' queued DATA, in the order they were held, until the socket is
        behind again."""
        for stream in list(self._blocked.values()):
            if self._full():
                break
            self.push(stream)


def server_ssl(context: ssl.SSLContext) -> ssl.SSLContext:
    """``context`` offering HTTP/2 (ALPN ``h2``), as gRPC clients require."""
    context.set_alpn_protocols(["h2"])
    return context


DEFAULT_SETTINGS: dict[int, int] = {
    h2.settings.SettingCodes.MAX_CONCURRENT_STREAMS: 10_000,
    h2.settings.SettingCodes.INITIAL_WINDOW_SIZE: 1 << 20,
    h2.settings.SettingCodes.MAX_HEADER_LIST_SIZE: 64 * 1024,
}
