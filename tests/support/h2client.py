"""A raw HTTP/2 client on one connection (the ``h2`` library over an asyncio socket), for the tests that
need control a real client does not give: many streams at once, a stream whose data is never
acknowledged (a client that stops reading it), frames a well-behaved client would never send.

Every wait is bounded: a hung service fails the test.
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
from dataclasses import dataclass, field

import h2.config
import h2.connection
import h2.events
import h2.settings

__all__ = ["H2Client", "Response"]

WAIT = 30.0
"""Seconds any one wait may take."""


@dataclass
class Response:
    """What one stream received so far."""

    headers: dict[str, str] = field(default_factory=dict)
    body: bytearray = field(default_factory=bytearray)
    ended: asyncio.Event = field(default_factory=asyncio.Event)
    reset: int | None = None
    """The RST_STREAM error code the server sent, if it reset the stream."""
    end_stream: bool = False
    """The server ended the stream (END_STREAM), as opposed to the connection closing under it."""
    changed: asyncio.Event = field(default_factory=asyncio.Event)

    @property
    def status(self) -> int:
        return int(self.headers[":status"])

    @property
    def lines(self) -> list[bytes]:
        return [line for line in bytes(self.body).split(b"\n") if line]


class H2Client:
    """One HTTP/2 connection (see the module docstring). ``stalled`` streams are never acknowledged."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._reader = reader
        self._writer = writer
        config = h2.config.H2Configuration(client_side=True, header_encoding=None)
        self.h2 = h2.connection.H2Connection(config)
        self.responses: dict[int, Response] = {}
        self.stalled: set[int] = set()
        self.terminated: h2.events.ConnectionTerminated | None = None
        self.closed = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    @classmethod
    async def connect(
        cls, host: str, port: int, *, ssl_context: ssl.SSLContext | None = None, preface: bool = True
    ) -> H2Client:
        """Connect (over TLS offering only ``h2`` when ``ssl_context`` is given); with ``preface``, send
        the connection preface and a large connection window (so that a stalled stream cannot use it
        all up)."""
        if ssl_context is not None:
            ssl_context.set_alpn_protocols(["h2"])
        reader, writer = await asyncio.open_connection(host, port, ssl=ssl_context)
        client = cls(reader, writer)
        if preface:
            client.h2.initiate_connection()
            client.h2.increment_flow_control_window(64 * 1024 * 1024)
            client.flush()
        client._task = asyncio.get_running_loop().create_task(client._read(), name="h2 test client")
        return client

    def flush(self) -> None:
        data = self.h2.data_to_send()
        if data:
            self._writer.write(data)

    def send_raw(self, data: bytes) -> None:
        self._writer.write(data)

    def request(
        self,
        method: str,
        path: str,
        *,
        headers: list[tuple[str, str]] | None = None,
        body: bytes = b"",
        authority: str = "localhost",
    ) -> int:
        """Open a stream with this request; returns its id."""
        stream_id = self.h2.get_next_available_stream_id()
        fields = [(":method", method), (":path", path), (":scheme", "http"), (":authority", authority)]
        fields += headers or []
        self.responses[stream_id] = Response()
        self.h2.send_headers(stream_id, fields, end_stream=not body)
        if body:
            self.h2.send_data(stream_id, body, end_stream=True)
        self.flush()
        return stream_id

    async def response(self, stream_id: int) -> Response:
        """The stream's whole response (or its reset)."""
        response = self.responses[stream_id]
        async with asyncio.timeout(WAIT):
            await response.ended.wait()
        return response

    async def until(self, stream_id: int, predicate: object) -> Response:
        """Wait until ``predicate(response)`` holds for the stream (or it ends)."""
        response = self.responses[stream_id]
        async with asyncio.timeout(WAIT):
            while not predicate(response):  # type: ignore[operator]
                if response.ended.is_set():
                    break
                response.changed.clear()
                await response.changed.wait()
        return response

    async def _read(self) -> None:
        try:
            while data := await self._reader.read(65536):
                for event in self.h2.receive_data(data):
                    self._event(event)
                self.flush()
        except (ConnectionError, h2.exceptions.ProtocolError):
            pass
        finally:
            self.closed.set()
            for response in self.responses.values():
                response.ended.set()
                response.changed.set()

    def _event(self, event: h2.events.Event) -> None:
        if isinstance(event, h2.events.ResponseReceived):
            response = self.responses[event.stream_id]
            response.headers = {k.decode(): v.decode() for k, v in event.headers}
            response.changed.set()
        elif isinstance(event, h2.events.DataReceived):
            response = self.responses[event.stream_id]
            response.body += event.data
            response.changed.set()
            if event.stream_id not in self.stalled:
                self.h2.acknowledge_received_data(event.flow_controlled_length, event.stream_id)
        elif isinstance(event, h2.events.StreamEnded):
            self.responses[event.stream_id].end_stream = True
            self.responses[event.stream_id].ended.set()
            self.responses[event.stream_id].changed.set()
        elif isinstance(event, h2.events.StreamReset):
            response = self.responses[event.stream_id]
            response.reset = event.error_code
            response.ended.set()
            response.changed.set()
        elif isinstance(event, h2.events.ConnectionTerminated):
            self.terminated = event

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        self._writer.close()
        with contextlib.suppress(ConnectionError, ssl.SSLError):
            await self._writer.wait_closed()


def frame(kind: int, flags: int, stream_id: int, payload: bytes) -> bytes:
    """One raw HTTP/2 frame."""
    size = len(payload)
    return size.to_bytes(3, "big") + bytes((kind, flags)) + stream_id.to_bytes(4, "big") + payload


SETTINGS_MAX_CONCURRENT_STREAMS = h2.settings.SettingCodes.MAX_CONCURRENT_STREAMS
