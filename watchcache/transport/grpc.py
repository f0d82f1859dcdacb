"""gRPC over :mod:`.http2`: the framing, the calls, and a servicer context like grpcio's.

A gRPC call is an HTTP/2 request to ``/{package}.{Service}/{Method}`` whose body is length-prefixed
messages (one byte of flags, four of length), answered with headers, messages and trailers carrying
``grpc-status`` and ``grpc-message``. Servicers are plain objects with one async method per RPC, as for
grpcio: a unary method takes the request and a :class:`Context` and returns the response; a streaming
one takes the request iterator and writes (:meth:`Context.write`) or yields its responses. A method's
responses may be bytes already encoded (``encode=None``): the etcd front's watch responses are spliced
from shared pieces.
"""

from __future__ import annotations

import inspect
import logging
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass
from typing import Any, NoReturn
from urllib.parse import quote

from .http2 import Piece, Stream

__all__ = ["Context", "GrpcServer", "Method", "Unary"]

log = logging.getLogger(__name__)

_OK = 0
_UNIMPLEMENTED = 12
_INTERNAL = 13
_RESOURCE_EXHAUSTED = 8
_RESPONSE_HEADERS = [(b":status", b"200"), (b"content-type", b"application/grpc")]


class _Aborted(Exception):
    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


def _code(code: Any) -> int:
    """A status code as its number (grpcio's ``StatusCode`` members hold it first in their value)."""
    value = getattr(code, "value", code)
    return int(value[0] if isinstance(value, tuple) else value)


def _trailers(code: int, message: str = "") -> list[tuple[bytes, bytes]]:
    trailers = [(b"grpc-status", str(code).encode())]
    if message:
        trailers.append((b"grpc-message", quote(message, safe=" !\"#$&'()*+,-./:;<=>?@[\\]^_`{|}~").encode()))
    return trailers


def frame(message: bytes) -> bytes:
    """One length-prefixed gRPC message (uncompressed)."""
    return b"\0" + len(message).to_bytes(4, "big") + message


class Context:
    """What a servicer method is told of its call, and how it answers (grpcio's names)."""

    def __init__(self, stream: Stream, encode: Callable[[Any], bytes] | None) -> None:
        #: The call's HTTP/2 stream.
        self.stream = stream
        self._stream = stream
        self._encode = encode
        self._started = False
        self._metadata: tuple[tuple[str, str], ...] | None = None

    def invocation_metadata(self) -> tuple[tuple[str, str], ...]:
        if self._metadata is None:
            self._metadata = tuple(
                (k.decode("latin-1"), v.decode("latin-1"))
                for k, v in self._stream.headers
                if not k.startswith(b":") and not k.startswith(b"grpc-") and k not in (b"content-type", b"te")
            )
        return self._metadata

    def auth_context(self) -> dict[str, list[bytes]]:
        name = self._stream.connection.peer_common_name
        return {"x509_common_name": [name.encode()]} if name else {}

    def peer(self) -> str:
        transport = self._stream.connection.transport
        address = transport.get_extra_info("peername") if transport is not None else None
        return f"{address[0]}:{address[1]}" if address else "unknown"

    async def abort(self, code: Any, details: str = "") -> NoReturn:
        raise _Aborted(_code(code), details)

    def _start(self) -> None:
        if not self._started:
            self._started = True
            self._stream.send_headers(_RESPONSE_HEADERS)

    def send(self, message: Any) -> None:
        """Queue one response message (no waiting: see :meth:`write`)."""
        self._start()
        data = message if self._encode is None else self._encode(message)
        self._stream.send(frame(data))

    def send_parts(self, parts: list[bytes]) -> None:
        """Queue one response message already encoded as ``parts`` (no waiting), framed without
        copying them first: the parts are joined once, into the HTTP/2 frame itself."""
        self._start()
        size = sum(map(len, parts))
        self._stream.send_parts([b"\0" + size.to_bytes(4, "big"), *parts], size + 5)

    def send_message(self, parts: list[Piece], size: int) -> None:
        """Queue one response message already framed (its length prefix the first of ``parts``, ``size``
        bytes in all) and perhaps shared by many calls: the pieces are handed on as they are."""
        if not self._started:
            self._start()
        self._stream.send_parts(parts, size)

    @property
    def unsent(self) -> int:
        """Bytes of responses queued that the client's flow-control window has not let out yet."""
        return self._stream.unsent

    async def write(self, message: Any, *, unsent: int = 1 << 20) -> None:
        """Send one response message, then wait while more than ``unsent`` bytes are waiting for the
        client to read (its flow-control window)."""
        self.send(message)
        await self._stream.drain(unsent)

    @property
    def closed(self) -> bool:
        return self._stream.closed

    def _finish(self, code: int, message: str = "") -> None:
        if not self._started:
            # Trailers-only: status in the one HEADERS frame.
            self._stream.send_headers([*_RESPONSE_HEADERS, *_trailers(code, message)], end_stream=True)
        else:
            self._stream.end(_trailers(code, message))


@dataclass(frozen=True)
class Method:
    """One RPC: its handler, whether requests and responses stream, and how messages are coded."""

    handler: Callable[..., Any]
    decode: Callable[[bytes], Any]
    encode: Callable[[Any], bytes] | None
    """None: the handler's responses are bytes already."""
    client_streaming: bool = False
    server_streaming: bool = False


def Unary(handler: Callable[..., Any], request: Any, response: Any) -> Method:
    return Method(handler, request.FromString, response.SerializeToString)


async def _messages(stream: Stream, decode: Callable[[bytes], Any], limit: int) -> AsyncIterator[Any]:
    """The request's messages, decoded, as their bytes arrive; one over ``limit`` bytes ends the call
    (RESOURCE_EXHAUSTED, as grpc-go answers) before it is buffered."""
    buffer = bytearray()
    while True:
        chunk = await stream.read()
        if chunk is None:
            if buffer:
                raise _Aborted(_INTERNAL, "the request ended inside a message")
            return
        buffer += chunk
        while len(buffer) >= 5:
            if buffer[0] != 0:
                raise _Aborted(_UNIMPLEMENTED, "compressed messages are not supported")
            size = int.from_bytes(buffer[1:5], "big")
            if size > limit:
                raise _Aborted(
                    _RESOURCE_EXHAUSTED,
                    f"grpc: received message larger than max ({size} vs. {limit})",
                )
            if len(buffer) < 5 + size:
                break
            message = bytes(buffer[5 : 5 + size])
            del buffer[: 5 + size]
            try:
                decoded = decode(message)
            except Exception as err:  # protobuf's DecodeError, and whatever else a bad message raises
                raise _Aborted(_INTERNAL, f"grpc: error unmarshalling request: {err}") from None
            yield decoded


class GrpcServer:
    """Serves the RPCs of ``methods`` (by path, ``/{package}.{Service}/{Method}``) on HTTP/2 streams."""

    def __init__(self, methods: Mapping[str, Method], *, max_message: int = 4 * 1024 * 1024) -> None:
        self.methods = dict(methods)
        self.max_message = max_message

    async def __call__(self, stream: Stream) -> None:
        content_type = stream.header(b"content-type") or b""
        method = self.methods.get(stream.path)
        if not content_type.startswith(b"application/grpc"):
            stream.send_headers([(b":status", b"415")], end_stream=True)
            return
        context = Context(stream, method.encode if method is not None else None)
        stream.long_lived = method is not None and method.client_streaming and method.server_streaming
        if method is None:
            context._finish(_UNIMPLEMENTED, f"unknown method {stream.path}")
            return
        try:
            await self._call(method, stream, context)
        except _Aborted as err:
            context._finish(err.code, err.message)
            return
        except Exception:
            log.exception("gRPC %s failed", stream.path)
            context._finish(_INTERNAL, "internal error; see the server log")
            return
        context._finish(_OK)

    async def _call(self, method: Method, stream: Stream, context: Context) -> None:
        requests = _messages(stream, method.decode, self.max_message)
        if method.client_streaming:
            argument: Any = requests
        else:
            argument = None
            async for request in requests:
                argument = request
                break
            if argument is None:
                raise _Aborted(_INTERNAL, "no request message")
        result = method.handler(argument, context)
        if inspect.isasyncgen(result):
            async for response in result:
                await context.write(response)
        elif method.server_streaming:
            await result
        else:
            response = await result
            context.send(response)
