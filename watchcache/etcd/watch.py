"""One etcd watch stream: its creation, its batches and the ways it ends."""

from __future__ import annotations

from typing import Any

import grpc
from aetcd import rpc

from ..errors import EtcdUnavailableError, ExpiredError, InternalError
from .errors import key_value, translate
from .types import EventType, RawEvent, WatchBatch

__all__ = ["EtcdWatch"]


class EtcdWatch:
    """One gRPC watch stream holding exactly one etcd watcher.

    Iterating yields :class:`WatchBatch` in revision order. A compacted start revision raises
    :class:`ExpiredError` (with ``oldest_revision``); a broken stream raises
    :class:`EtcdUnavailableError`; the caller resumes from the last revision it saw.
    """

    def __init__(self, stub: Any, key: bytes, range_end: bytes, start_revision: int) -> None:
        self._stub = stub
        self._request = rpc.WatchRequest(
            create_request=rpc.WatchCreateRequest(
                key=key,
                range_end=range_end,
                start_revision=start_revision,
                progress_notify=True,
            )
        )
        self._call: Any = None

    async def __aenter__(self) -> EtcdWatch:
        # "hasleader" (clientv3.WithRequireLeader): a member that loses its leader ends the stream, so
        # the cache resumes on a member that has one instead of silently hearing nothing.
        self._call = self._stub.Watch(metadata=(("hasleader", "true"),))
        try:
            try:
                await self._call.write(self._request)
            except grpc.aio.AioRpcError as err:
                raise translate(err, "watch") from err
            except grpc.aio.UsageError as err:  # the call ended before the request went out
                raise EtcdUnavailableError(f"etcd watch stream closed: {err}") from err
            created = await self._read()
            if not created.created:
                raise InternalError("etcd watch: first response was not the creation")
            self._check_canceled(created)
        except BaseException:
            self._call.cancel()
            raise
        return self

    async def __aexit__(self, *exc: object) -> None:
        self._call.cancel()

    def __aiter__(self) -> EtcdWatch:
        return self

    async def _read(self) -> Any:
        try:
            resp = await self._call.read()
        except grpc.aio.AioRpcError as err:
            raise translate(err, "watch") from err
        if resp is grpc.aio.EOF:
            raise EtcdUnavailableError("etcd closed the watch stream")
        return resp

    @staticmethod
    def _check_canceled(resp: Any) -> None:
        if resp.compact_revision:
            raise ExpiredError(
                f"etcd compacted the watched history up to revision {resp.compact_revision}",
                oldest_revision=int(resp.compact_revision),
            )
        if resp.canceled:
            raise EtcdUnavailableError(f"etcd canceled the watch: {resp.cancel_reason}")

    async def __anext__(self) -> WatchBatch:
        resp = await self._read()
        self._check_canceled(resp)
        events = tuple(RawEvent(EventType(ev.type), key_value(ev.kv)) for ev in resp.events)
        return WatchBatch(int(resp.header.revision), events)
