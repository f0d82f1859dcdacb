"""REST over HTTP/2: each stream of a connection served by the same aiohttp application as HTTP/1.1.

Kubernetes clients (client-go, kubectl over TLS) multiplex many requests and watches on one HTTP/2
connection. A connection is :class:`watchcache.transport.http2.Connection` (the etcd front's framing);
each request stream becomes an aiohttp ``web.Request`` whose body is read from the stream and whose
response is written to it (:class:`_StreamWriter`, aiohttp's own writer interface), and runs through
the application's router, middleware and handlers exactly as a request of HTTP/1.1 does: tenancy,
limits, Status errors, write timeouts and byte budgets are the same code.

Two things differ from HTTP/1.1, both below the handlers:

- what a handler sees as its request's transport is its stream (:class:`_StreamTransport`): dropping a
  request whose client stopped reading resets the stream, not the connection (unless the connection
  itself is what stopped: then it is closed), and a watch's direct-write sink
  (:meth:`_StreamTransport.watch_sink`) writes each event's shared line as a DATA frame on the shared
  connection, which gathers everything written in one turn of the loop into one write: a change
  watched by many streams of a connection is one system call for that connection;
- a connection is counted by the :class:`~.connections.ConnectionGuard` as one connection (header
  timeout, the caps on unauthenticated ones, a tenant's ``maxConnections``), and idles out after
  ``idle_timeout`` without a stream, as HTTP/1.1's keep-alive does.

:class:`Listener` makes each accepted connection's protocol: over TLS the one ALPN chose (``h2`` or
``http/1.1``); in plain text HTTP/2 with prior knowledge when the client opens with HTTP/2's
connection preface, else aiohttp's HTTP/1.1.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import weakref
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, cast

import h2.exceptions
import h2.settings
import orjson
from aiohttp import web
from aiohttp.abc import AbstractStreamWriter
from aiohttp.http import HttpVersion11, RawRequestMessage
from aiohttp.streams import EMPTY_PAYLOAD
from multidict import CIMultiDict, CIMultiDictProxy
from yarl import URL

from ..api.watch import WatchEvent, WatchSink
from ..errors import BadRequestError, StatusError
from ..transport.http2 import Connection, Stream
from .connections import ConnectionGuard
from .wire import event_lines

__all__ = ["HTTP2Settings", "Listener", "PREFACE", "STREAM_HIGH_WATER", "drop_stream", "send_events"]

log = logging.getLogger(__name__)

PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
"""What an HTTP/2 client with prior knowledge sends first (RFC 9113 §3.4)."""

# A stream's unsent DATA past which its writer waits for the client (as aiohttp's HTTP/1.1 writer
# waits past its transport's high-water mark), and past which a watch's events queue in its watcher.
STREAM_HIGH_WATER = 64 * 1024
# Unsent bytes on a connection's socket past which a request dropped for not reading takes the whole
# connection with it (the client stopped reading the connection, not one stream).
_CONNECTION_BEHIND = 256 * 1024
# Response headers that belong to an HTTP/1.1 connection, not to an HTTP/2 stream (RFC 9113 §8.2.2).
_CONNECTION_HEADERS = frozenset(
    {"connection", "keep-alive", "proxy-connection", "transfer-encoding", "upgrade"}
)


@dataclass(frozen=True, kw_only=True)
class HTTP2Settings:
    """The REST front's HTTP/2."""

    enabled: bool = True
    """Offer ``h2`` by ALPN over TLS and accept prior-knowledge HTTP/2 (h2c) in plain text; off:
    HTTP/1.1 only."""
    max_concurrent_streams: int = 250
    """Requests (watches included) one connection may have open at once (Go's default); a client
    opening more gets a protocol error."""
    max_header_list_size: int = 64 * 1024
    """Bytes of one request's decoded header list (names, values and 32 each); more is a protocol
    error."""
    initial_window_size: int = 1 << 20
    """Bytes of a request body a client may send ahead of what the handler has read."""


# -- one stream, as aiohttp's handlers see it ---------------------------------------------------------


def drop_stream(stream: Stream) -> None:
    """Drop a request whose client stopped reading: reset its stream; close the whole connection when
    its socket is what is behind (the client stopped reading the connection, not one stream)."""
    transport = stream.connection.transport
    if transport is not None and transport.get_write_buffer_size() > _CONNECTION_BEHIND:
        transport.abort()
    else:
        stream.reset()


def send_events(stream: Stream, events: list[WatchEvent]) -> bool:
    """Write ``events``' shared lines as DATA of ``stream`` unless it is closed, ended or holds more
    than the high-water mark unsent (False: not written)."""
    if stream.closed or stream.ended or stream.unsent > STREAM_HIGH_WATER:
        return False
    data = event_lines(events)  # one piece: cut into frames as views, not walked again per frame
    stream.send_parts([data], len(data))
    return True


class _StreamTransport:
    """A request's transport: its stream of a connection (see the module docstring)."""

    __slots__ = ("_stream",)

    def __init__(self, stream: Stream) -> None:
        self._stream = stream

    @property
    def stream(self) -> Stream:
        return self._stream

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        transport = self._stream.connection.transport
        return default if transport is None else transport.get_extra_info(name, default)

    def is_closing(self) -> bool:
        return self._stream.closed or self._stream.connection.closed

    def get_write_buffer_size(self) -> int:
        return self._stream.unsent

    def abort(self) -> None:
        """Drop the request: reset its stream; close the whole connection when its socket is what is
        behind (the client stopped reading the connection, not one stream)."""
        drop_stream(self._stream)

    close = abort

    def watch_sink(self) -> WatchSink:
        """A watch's direct writes: each event's line, shared by every watcher, as DATA of this stream."""
        stream = self._stream

        def write(events: list[WatchEvent]) -> bool:
            return send_events(stream, events)

        return write


class _StreamProtocol:
    """What aiohttp's request asks of its connection's protocol, for one stream."""

    __slots__ = ("connection", "peername", "sockname", "ssl_context", "transport")

    max_field_size = 16384
    max_headers = 128

    def __init__(self, stream: Stream) -> None:
        transport = stream.connection.transport
        self.connection = stream.connection
        """The connection the stream is on: what :class:`~.connections.ConnectionGuard` counts."""
        self.transport = _StreamTransport(stream)
        self.ssl_context = transport.get_extra_info("sslcontext")
        self.peername = transport.get_extra_info("peername")
        self.sockname = transport.get_extra_info("sockname")


class _Body:
    """A request's body as aiohttp's request reads it (``readany`` until ``b""``), taken from the
    stream only as the handler reads it. A piece is acknowledged (the client's window reopened) when
    taken, so what waits unread on a connection is bounded by its flow-control window, however many
    streams it has — and nothing is read for a request that never gets to reading its body."""

    def __init__(self, stream: Stream) -> None:
        self._stream = stream
        self._taken = 0
        self._eof = False
        self._exception: BaseException | None = None

    def at_eof(self) -> bool:
        stream = self._stream
        return self._eof or (stream.body_ended and self._taken == stream.body_received)

    is_eof = at_eof

    def exception(self) -> BaseException | None:
        return self._exception

    def set_exception(self, exc: BaseException, exc_cause: BaseException | None = None) -> None:
        self._exception = exc

    def set_read_chunk_size(self, size: int) -> None:
        """(Pieces are the DATA frames as they came.)"""

    async def readany(self) -> bytes:
        if self._exception is not None:
            raise self._exception
        if self._eof:
            return b""
        piece = await self._stream.read()
        if piece is None:
            self._eof = True
            if not self._stream.body_ended:
                raise ConnectionResetError("the client reset the stream")
            return b""
        self._taken += len(piece)
        return piece

    async def read(self, n: int = -1) -> bytes:
        """The rest of the body (``n`` is a hint: a piece may be longer)."""
        pieces = []
        while piece := await self.readany():
            pieces.append(piece)
            if 0 <= n <= sum(len(p) for p in pieces):
                break
        return b"".join(pieces)


class _StreamWriter(AbstractStreamWriter):
    """aiohttp's response writer interface over a stream: the status and headers as HEADERS, the body
    as DATA (HTTP/2 frames it: no chunked encoding), the end as END_STREAM; each write waits while
    the stream holds more than the high-water mark unsent."""

    def __init__(self, stream: Stream) -> None:
        self._stream = stream
        self.length: int | None = None

    async def write_headers(self, status_line: str, headers: CIMultiDict[str]) -> None:
        status = status_line.split(" ", 2)[1]
        fields = [(b":status", status.encode("ascii"))]
        for name, value in headers.items():
            lower = name.lower()
            if lower not in _CONNECTION_HEADERS:
                fields.append((lower.encode("ascii"), value.encode("utf-8", "surrogateescape")))
        self._stream.send_headers(fields)

    async def write(self, chunk: bytes | bytearray | memoryview) -> None:
        if not chunk:
            return
        self._check()
        self.output_size += len(chunk)
        self._stream.send(bytes(chunk))
        await self._wait(STREAM_HIGH_WATER)

    async def write_eof(self, chunk: bytes = b"") -> None:
        if chunk:
            await self.write(chunk)
        self._check()
        self._stream.end([])
        await self._wait(0)

    async def drain(self) -> None:
        await self._wait(STREAM_HIGH_WATER)

    def enable_compression(self, encoding: str = "deflate", strategy: int | None = None) -> None:
        raise RuntimeError("the REST front does not compress responses")

    def enable_chunking(self) -> None:
        """HTTP/2 frames the body itself."""

    def _check(self) -> None:
        if self._stream.closed:
            raise ConnectionResetError("the client reset the stream")

    async def _wait(self, limit: int) -> None:
        await self._stream.drain(limit)
        self._check()


# -- connections ---------------------------------------------------------------------------------------


class _RestConnection(Connection):
    """An HTTP/2 connection of the REST front: counted by the guard, closed when idle."""

    def __init__(self, front: _Front) -> None:
        settings = front.settings
        super().__init__(
            front.serve,
            settings={
                h2.settings.SettingCodes.MAX_CONCURRENT_STREAMS: settings.max_concurrent_streams,
                h2.settings.SettingCodes.INITIAL_WINDOW_SIZE: settings.initial_window_size,
                h2.settings.SettingCodes.MAX_HEADER_LIST_SIZE: settings.max_header_list_size,
            },
            validate=True,
        )
        self._front = front
        self._idle: asyncio.TimerHandle | None = None

    def connection_made(self, transport: Any) -> None:
        self._front.guard.opened(self, transport)
        self._front.connections.add(self)
        super().connection_made(transport)
        self.idle()

    def connection_lost(self, exc: BaseException | None) -> None:
        super().connection_lost(exc)
        if self._idle is not None:
            self._idle.cancel()
        self._front.guard.closed(self)

    def data_received(self, data: bytes) -> None:
        super().data_received(data)
        if self.streams and self._idle is not None:
            self._idle.cancel()
            self._idle = None

    def idle(self) -> None:
        """Called when a stream ends: with none left, the connection may idle ``idle_timeout``."""
        if self.streams or self.closed:
            return
        if self._idle is not None:
            self._idle.cancel()
        self._idle = asyncio.get_running_loop().call_later(self._front.idle_timeout, self.goaway)

    def goaway(self) -> None:
        """GOAWAY and close (idle, or after a response that closes its connection)."""
        if self.closed or self.transport is None:
            return
        with contextlib.suppress(h2.exceptions.H2Error):
            self.h2.close_connection()
        self.flush()
        self._write_out()
        self.transport.close()


class _Front:
    """Serves each stream of the REST front's HTTP/2 connections through the aiohttp application."""

    def __init__(
        self, *, server: web.Server, guard: ConnectionGuard, settings: HTTP2Settings, idle_timeout: float
    ) -> None:
        self.server = server
        self.guard = guard
        self.settings = settings
        self.idle_timeout = idle_timeout
        self.connections: weakref.WeakSet[_RestConnection] = weakref.WeakSet()

    async def serve(self, stream: Stream) -> None:
        connection = cast(_RestConnection, stream.connection)
        try:
            try:
                message = _message(stream)
            except StatusError as err:
                _refuse(stream, err)
                return
            stream.headers = []  # aiohttp's message holds them now (and a parked watch needs none)
            # A watch lasts until its client or the cache ends it: a shutdown does not wait for it.
            stream.long_lived = message.url.query.get("watch") in ("true", "1")
            protocol = _StreamProtocol(stream)
            # No body (GET, WATCH, most DELETEs): aiohttp's empty payload, as HTTP/1.1 has.
            empty = stream.body_ended and not stream.body_received
            payload: Any = EMPTY_PAYLOAD if empty else _Body(stream)
            task = asyncio.current_task()
            assert task is not None
            writer = _StreamWriter(stream)
            request = self.server.request_factory(message, payload, cast(Any, protocol), writer, task)
            response = await self.server.request_handler(request)
            await response.prepare(request)
            await response.write_eof()
            if response.keep_alive is False:  # e.g. a 429 whose connection slot is what is scarce
                connection.goaway()
        except ConnectionResetError:
            stream.reset()
        finally:
            # Answered without reading the whole body (a 413, a 401): what came of it is acknowledged,
            # or it would hold the connection's window for good.
            stream.discard()
            if stream.on_close is None:  # not a parked watch's now (see watch.ParkedStream)
                connection.streams.pop(stream.id, None)
                connection.idle()

    async def close(self, grace: float) -> None:
        """GOAWAY on every connection; the requests in flight get ``grace`` seconds."""
        await asyncio.gather(*(c.shut(grace) for c in list(self.connections)))


def _message(stream: Stream) -> RawRequestMessage:
    """The stream's request as aiohttp's parser would have made it (h2 has validated the fields)."""
    method = path = authority = ""
    headers: CIMultiDict[str] = CIMultiDict()
    raw: list[tuple[bytes, bytes]] = []
    for name, value in stream.headers:
        if name.startswith(b":"):
            if name == b":method":
                method = value.decode("ascii", "replace")
            elif name == b":path":
                path = value.decode("utf-8", "surrogateescape")
            elif name == b":authority":
                authority = value.decode("utf-8", "surrogateescape")
            continue
        if name == b"expect":
            # HTTP/2 has no interim 100 response to wait for: the body simply follows (its window
            # bounds it), and aiohttp's expect handler would write HTTP/1.1 bytes to the stream.
            continue
        headers.add(name.decode("ascii", "replace"), value.decode("utf-8", "surrogateescape"))
        raw.append((name, value))
    if authority and "host" not in headers:
        headers["Host"] = authority
        raw.append((b"host", authority.encode("utf-8", "surrogateescape")))
    if not path.startswith("/"):
        raise BadRequestError("the request's :path must start with /")
    target, _, query = path.partition("?")
    try:
        url = URL.build(path=target, query_string=query, encoded=True)
    except ValueError as err:
        raise BadRequestError("the request's :path is not a valid path") from err
    return RawRequestMessage(
        method, path, HttpVersion11, CIMultiDictProxy(headers), tuple(raw), False, None, False, False, url
    )


def _refuse(stream: Stream, err: StatusError) -> None:
    """Answer a stream that never reaches the application with ``err``'s Status."""
    body = orjson.dumps(err.status())
    stream.send_headers(
        [
            (b":status", str(err.code).encode()),
            (b"content-type", b"application/json"),
            (b"content-length", str(len(body)).encode()),
        ]
    )
    stream.send(body)
    stream.end([])


# -- choosing the protocol of a connection ---------------------------------------------------------


class _Sniffer(asyncio.Protocol):
    """A new connection until its protocol is known (see the module docstring); counted by the guard
    meanwhile, under its header timeout."""

    def __init__(self, listener: Listener) -> None:
        self._listener = listener
        self._transport: Any = None
        self._buffer = b""
        self._counted = False

    def connection_made(self, transport: Any) -> None:
        self._transport = transport
        listener = self._listener
        if listener.tls:
            ssl_object = transport.get_extra_info("ssl_object")
            chosen = ssl_object.selected_alpn_protocol() if ssl_object is not None else None
            self._become(listener.http2() if chosen == "h2" else listener.http1(), b"")
            return
        listener.guard.opened(self, transport)
        self._counted = True

    def data_received(self, data: bytes) -> None:
        buffer = self._buffer = self._buffer + data
        seen = min(len(buffer), len(PREFACE))
        if buffer[:seen] != PREFACE[:seen]:
            self._become(self._listener.http1(), buffer)
        elif seen == len(PREFACE):
            self._become(self._listener.http2(), buffer)

    def connection_lost(self, exc: BaseException | None) -> None:
        if self._counted:
            self._counted = False
            self._listener.guard.closed(self)

    def _become(self, protocol: asyncio.Protocol, data: bytes) -> None:
        if self._counted:
            self._counted = False
            self._listener.guard.closed(self)
        self._buffer = b""
        transport = self._transport
        transport.set_protocol(protocol)
        protocol.connection_made(transport)
        if data and not transport.is_closing():
            protocol.data_received(data)


class Listener:
    """Makes the protocol of each accepted connection of the REST front (see the module docstring)."""

    def __init__(
        self,
        *,
        server: web.Server,
        guard: ConnectionGuard,
        settings: HTTP2Settings,
        idle_timeout: float,
        tls: bool,
        counted: Callable[[str], None],
    ) -> None:
        """``counted``: told each connection's protocol (``h2`` or ``http/1.1``) once chosen."""
        self.server = server
        self.guard = guard
        self.tls = tls
        self._counted = counted
        self._front = _Front(server=server, guard=guard, settings=settings, idle_timeout=idle_timeout)

    def __call__(self) -> asyncio.Protocol:
        return _Sniffer(self)

    def http1(self) -> asyncio.Protocol:
        self._counted("http/1.1")
        return cast(asyncio.Protocol, self.server())

    def http2(self) -> asyncio.Protocol:
        self._counted("h2")
        return _RestConnection(self._front)

    async def close(self, grace: float) -> None:
        await self._front.close(grace)
