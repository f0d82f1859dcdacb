"""A raw etcd v3 client for tests: etcd's own protobufs over grpc, to etcd or to watchcache's etcd front.

Raw on purpose: tests compare what the front answers with what etcd answers, field by field, so
nothing may be hidden or normalised on the way (no client library's retries or conveniences).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import grpc
from aetcd.rpc import rpc_pb2, rpc_pb2_grpc

__all__ = ["EtcdV3", "RpcFailed", "WatchStream", "prefix_end"]


def prefix_end(prefix: bytes) -> bytes:
    stripped = prefix.rstrip(b"\xff")
    return stripped[:-1] + bytes((stripped[-1] + 1,)) if stripped else b"\0"


class RpcFailed(Exception):
    """A call's gRPC status (what an etcd client matches on: code and message); equal to another of
    the same code and message. Not a frozen dataclass: an exception's traceback must be settable."""

    def __init__(self, code: grpc.StatusCode, message: str) -> None:
        super().__init__(f"{code.name}: {message}")
        self.code = code
        self.message = message

    def __eq__(self, other: object) -> bool:
        return isinstance(other, RpcFailed) and (self.code, self.message) == (other.code, other.message)

    def __hash__(self) -> int:
        return hash((self.code, self.message))


@dataclass
class EtcdV3:
    """One channel to ``target`` (``host:port``), with optional TLS, etcd token metadata and grpc
    channel ``options``."""

    target: str
    credentials: grpc.ChannelCredentials | None = None
    token: str | None = None
    timeout: float = 10.0
    options: Sequence[tuple[str, Any]] = ()
    channel: Any = field(default=None, init=False)

    async def __aenter__(self) -> EtcdV3:
        if self.credentials is None:
            self.channel = grpc.aio.insecure_channel(self.target, options=list(self.options))
        else:
            self.channel = grpc.aio.secure_channel(self.target, self.credentials, options=list(self.options))
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.channel.close()

    def _metadata(self) -> tuple[tuple[str, str], ...]:
        return (("token", self.token),) if self.token else ()

    async def call(self, service: str, method: str, request: Any) -> Any:
        stub = getattr(rpc_pb2_grpc, f"{service}Stub")(self.channel)
        try:
            return await getattr(stub, method)(request, timeout=self.timeout, metadata=self._metadata())
        except grpc.aio.AioRpcError as err:
            raise RpcFailed(err.code(), err.details() or "") from None

    async def range(self, key: bytes, end: bytes = b"", **kw: Any) -> Any:
        return await self.call("KV", "Range", rpc_pb2.RangeRequest(key=key, range_end=end, **kw))

    async def put(self, key: bytes, value: bytes, **kw: Any) -> Any:
        return await self.call("KV", "Put", rpc_pb2.PutRequest(key=key, value=value, **kw))

    async def delete(self, key: bytes, end: bytes = b"", **kw: Any) -> Any:
        return await self.call("KV", "DeleteRange", rpc_pb2.DeleteRangeRequest(key=key, range_end=end, **kw))

    async def txn(self, compare: list[Any], success: list[Any], failure: list[Any]) -> Any:
        return await self.call(
            "KV", "Txn", rpc_pb2.TxnRequest(compare=compare, success=success, failure=failure)
        )

    async def authenticate(self, name: str, password: str) -> str:
        answer = await self.call(
            "Auth", "Authenticate", rpc_pb2.AuthenticateRequest(name=name, password=password)
        )
        return str(answer.token)

    @asynccontextmanager
    async def watch_stream(self) -> AsyncIterator[WatchStream]:
        stub = rpc_pb2_grpc.WatchStub(self.channel)
        call = stub.Watch(metadata=(("hasleader", "true"), *self._metadata()))
        try:
            yield WatchStream(call)
        finally:
            call.cancel()


@dataclass
class WatchStream:
    """One Watch RPC: send create/cancel/progress requests, read responses with a deadline."""

    call: Any

    async def create(self, key: bytes, end: bytes = b"", **kw: Any) -> None:
        await self.call.write(
            rpc_pb2.WatchRequest(create_request=rpc_pb2.WatchCreateRequest(key=key, range_end=end, **kw))
        )

    async def cancel(self, watch_id: int) -> None:
        await self.call.write(
            rpc_pb2.WatchRequest(cancel_request=rpc_pb2.WatchCancelRequest(watch_id=watch_id))
        )

    async def request_progress(self) -> None:
        await self.call.write(rpc_pb2.WatchRequest(progress_request=rpc_pb2.WatchProgressRequest()))

    async def read(self, within: float = 10.0) -> Any:
        async with asyncio.timeout(within):
            answer = await self.call.read()
        assert answer is not grpc.aio.EOF, "the watch stream ended"
        return answer

    async def events(self, count: int, within: float = 10.0) -> list[Any]:
        """The next ``count`` events (skipping progress notifications), in order."""
        events: list[Any] = []
        async with asyncio.timeout(within):
            while len(events) < count:
                events.extend((await self.read(within)).events)
        return events
