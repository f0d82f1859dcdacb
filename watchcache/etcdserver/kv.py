"""etcd's KV service: ranges from the caches, writes straight to etcd, each within the tenant's keyspace.

Range: a plain range (no sort, no revision filters) inside one configured resource's prefix is answered
from that resource's cache with etcd's exact ``KeyValue`` fields, ``count`` (every key of the range,
whatever the limit) and ``more``: at revision 0 after the same consistent-read sync as REST
(``serializable`` skips it), at a past revision from the cache's window while it still holds it.
Anything else is passed to etcd. Put, DeleteRange and Txn are passed to etcd after every key, range,
compare and operation is checked against the tenant's keyspace (nested transactions too) and the
tenant's private keys are mapped; etcd's answers and errors come back as they are, with the private
keys mapped back and the caches' progress keys never shown. Compact is accepted and does nothing:
compaction of the shared etcd belongs to the cluster.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Sequence
from typing import Any

from aetcd.rpc import kv_pb2, rpc_pb2

from ..cache.store import Entry
from .errors import EMPTY_KEY, FUTURE_REVISION, TOO_MANY_OPS
from .front import Context, Front, rpc
from .keyspace import Keyspace
from .lease import Leases
from .session import Caller

__all__ = ["KV", "key_value"]

_MAX_TXN_OPS = 128


def key_value(entry: Entry, *, keys_only: bool = False) -> kv_pb2.KeyValue:
    return kv_pb2.KeyValue(
        key=entry.key,
        create_revision=entry.create_revision,
        mod_revision=entry.revision,
        version=entry.version,
        value=b"" if keys_only or entry.deleted else entry.value,
        lease=entry.lease,
    )


def _plain(request: rpc_pb2.RangeRequest) -> bool:
    """A range the caches can answer: no sort, no revision filters."""
    return not (
        request.sort_order
        or request.sort_target
        or request.min_mod_revision
        or request.max_mod_revision
        or request.min_create_revision
        or request.max_create_revision
    )


class KV:
    """The KV service (see the module docstring)."""

    def __init__(self, front: Front, leases: Leases) -> None:
        self.front = front
        self._leases = leases

    # -- Range --------------------------------------------------------------------------------------

    @rpc
    async def Range(self, caller: Caller, request: rpc_pb2.RangeRequest, context: Context) -> Any:
        if not request.key:
            raise EMPTY_KEY()
        space = caller.keyspace
        key, end = space.check(request.key, request.range_end, write=False)
        cache = self.front.cache_for(key, end)
        if cache is not None and _plain(request):
            answer = await self._from_cache(cache, request, key, end)
            if answer is not None:
                return answer
        real = rpc_pb2.RangeRequest()
        real.CopyFrom(request)
        real.key, real.range_end = key, end
        return await self._passed(space, real)

    async def _from_cache(self, cache: Any, request: rpc_pb2.RangeRequest, key: bytes, end: bytes) -> Any:
        revision = max(0, request.revision)
        current = 0
        if revision == 0:
            if not request.serializable:
                await cache.sync()
        else:
            current = await self._past_revision(cache, revision)
        found = cache.range_at(key, end, revision=revision, limit=request.limit)
        if found is None:
            return None  # older than the cache's window: etcd knows it, or says it was compacted
        entries, count = found
        kvs = [] if request.count_only else [key_value(e, keys_only=request.keys_only) for e in entries]
        return rpc_pb2.RangeResponse(
            header=self.front.header(max(current, cache.revision)),
            kvs=kvs,
            # etcd counts without fetching for count_only, so its limit never leaves "more".
            more=bool(request.limit) and not request.count_only and count > len(entries),
            count=count,
        )

    async def _past_revision(self, cache: Any, revision: int) -> int:
        """Ready ``cache`` to answer at ``revision`` (a future one is etcd's error); etcd's current
        revision, which heads the answer as etcd's own answer is headed — the cache may not have seen
        the latest writes yet (the caller's own, just made, among them), though they do not change what
        is read at ``revision``."""
        current = await self.front.current_revision()
        if revision > current:
            raise FUTURE_REVISION()
        if revision > cache.revision:
            await cache.wait_for(revision, cache.settings.wait_timeout)
        return current

    async def _passed(self, space: Keyspace, request: rpc_pb2.RangeRequest) -> Any:
        """A range straight from etcd, the tenant's private keys named as it knows them and the
        hidden keys taken out (of ``kvs``, ``count`` and ``more`` alike)."""
        hidden = space.hidden_in(request.key, request.range_end)
        if hidden and request.limit:
            request.limit += len(hidden)
        response = await self.front.forward("KV", "Range", request)
        if hidden:
            revision = request.revision or response.header.revision
            present = 0
            for key in hidden:
                probe = rpc_pb2.RangeRequest(key=key, revision=revision, count_only=True)
                present += (await self.front.forward("KV", "Range", probe)).count
            kept = [kv for kv in response.kvs if not space.is_hidden(kv.key)]
            limit = request.limit - len(hidden) if request.limit else 0
            if limit:
                kept = kept[:limit]
            del response.kvs[:]
            response.kvs.extend(kept)
            response.count -= present
            response.more = bool(limit) and not request.count_only and response.count > len(kept)
        for kv in response.kvs:
            kv.key = space.to_virtual(kv.key)
        return response

    # -- writes ---------------------------------------------------------------------------------------

    @rpc
    async def Put(self, caller: Caller, request: rpc_pb2.PutRequest, context: Context) -> Any:
        if not request.key:
            raise EMPTY_KEY()
        space = caller.keyspace
        real = rpc_pb2.PutRequest()
        real.CopyFrom(request)
        real.key, _ = space.check(request.key, b"", write=True)
        if request.lease:
            await self._leases.check_owned(caller, request.lease)
        async with self._room(caller, [real]):
            response = await self.front.forward("KV", "Put", real)
        if response.HasField("prev_kv"):
            response.prev_kv.key = space.to_virtual(response.prev_kv.key)
        return response

    @rpc
    async def DeleteRange(self, caller: Caller, request: rpc_pb2.DeleteRangeRequest, context: Context) -> Any:
        if not request.key:
            raise EMPTY_KEY()
        space = caller.keyspace
        key, end = space.check(request.key, request.range_end, write=True)
        pieces = _around(space.hidden_in(key, end), key, end)
        if len(pieces) == 1:
            real = rpc_pb2.DeleteRangeRequest()
            real.CopyFrom(request)
            real.key, real.range_end = pieces[0]
            response = await self.front.forward("KV", "DeleteRange", real)
        else:
            # The range holds a hidden key: delete around it, in one transaction (one revision).
            ops = [
                rpc_pb2.RequestOp(
                    request_delete_range=rpc_pb2.DeleteRangeRequest(
                        key=k, range_end=e, prev_kv=request.prev_kv
                    )
                )
                for k, e in pieces
            ]
            txn = await self.front.forward("KV", "Txn", rpc_pb2.TxnRequest(success=ops))
            response = rpc_pb2.DeleteRangeResponse(header=txn.header)
            for op in txn.responses:
                response.deleted += op.response_delete_range.deleted
                response.prev_kvs.extend(op.response_delete_range.prev_kvs)
        for kv in response.prev_kvs:
            kv.key = space.to_virtual(kv.key)
        return response

    @rpc
    async def Txn(self, caller: Caller, request: rpc_pb2.TxnRequest, context: Context) -> Any:
        if max(len(request.compare), len(request.success), len(request.failure)) > _MAX_TXN_OPS:
            raise TOO_MANY_OPS()
        real = rpc_pb2.TxnRequest()
        real.CopyFrom(request)
        puts: list[rpc_pb2.PutRequest] = []
        await self._map_txn(caller, real, puts)
        async with self._room(caller, puts):
            response = await self.front.forward("KV", "Txn", real)
        _unmap_txn(caller.keyspace, response)
        return response

    async def _map_txn(self, caller: Caller, txn: rpc_pb2.TxnRequest, puts: list[rpc_pb2.PutRequest]) -> None:
        space = caller.keyspace
        for compare in txn.compare:
            if not compare.key:
                raise EMPTY_KEY()
            compare.key, compare.range_end = space.check(compare.key, compare.range_end, write=False)
        for op in [*txn.success, *txn.failure]:
            kind = op.WhichOneof("request")
            if kind == "request_range":
                inner: Any = op.request_range
                if not inner.key:
                    raise EMPTY_KEY()
                inner.key, inner.range_end = space.check(inner.key, inner.range_end, write=False)
            elif kind == "request_put":
                inner = op.request_put
                if not inner.key:
                    raise EMPTY_KEY()
                inner.key, _ = space.check(inner.key, b"", write=True)
                if inner.lease:
                    await self._leases.check_owned(caller, inner.lease)
                puts.append(inner)
            elif kind == "request_delete_range":
                inner = op.request_delete_range
                if not inner.key:
                    raise EMPTY_KEY()
                inner.key, inner.range_end = space.check(inner.key, inner.range_end, write=True)
            elif kind == "request_txn":
                await self._map_txn(caller, op.request_txn, puts)

    @contextlib.asynccontextmanager
    async def _room(self, caller: Caller, puts: Sequence[rpc_pb2.PutRequest]) -> AsyncIterator[None]:
        """The tenant's quotas, as REST writes take them: room for what these puts may add."""
        if caller.admission is None or not puts:
            yield
            return
        objects, size = 0, 0
        for put in puts:
            cache = self.front.cache_for(put.key, b"")
            current = cache.get(put.key) if cache is not None else None
            objects += current is None
            size += len(put.value) - (len(current.value) if current is not None else 0)
        async with caller.admission.reserve(objects=objects, size=size):
            yield

    # -- Compact --------------------------------------------------------------------------------------

    @rpc
    async def Compact(self, caller: Caller, request: rpc_pb2.CompactionRequest, context: Context) -> Any:
        current = await self.front.current_revision()
        if request.revision > current:
            raise FUTURE_REVISION()
        # Compaction of the shared etcd belongs to the cluster: accepted, and nothing is done.
        return rpc_pb2.CompactionResponse(header=self.front.header(current))


def _around(hidden: list[bytes], key: bytes, end: bytes) -> list[tuple[bytes, bytes]]:
    """``[key, end)`` as the ranges that leave out each of ``hidden`` (sorted, inside it)."""
    if not hidden:
        return [(key, end)]
    pieces = []
    start = key
    for h in hidden:
        if start < h:
            pieces.append((start, h))
        start = h + b"\0"
    if not end or start < end:
        pieces.append((start, end))
    return pieces or [(key, end)]


def _unmap_txn(space: Keyspace, response: Any) -> None:
    for op in response.responses:
        kind = op.WhichOneof("response")
        if kind == "response_range":
            kept = [kv for kv in op.response_range.kvs if not space.is_hidden(kv.key)]
            removed = len(op.response_range.kvs) - len(kept)
            if removed:
                del op.response_range.kvs[:]
                op.response_range.kvs.extend(kept)
                op.response_range.count -= removed
            for kv in op.response_range.kvs:
                kv.key = space.to_virtual(kv.key)
        elif kind == "response_put" and op.response_put.HasField("prev_kv"):
            op.response_put.prev_kv.key = space.to_virtual(op.response_put.prev_kv.key)
        elif kind == "response_delete_range":
            for kv in op.response_delete_range.prev_kvs:
                kv.key = space.to_virtual(kv.key)
        elif kind == "response_txn":
            _unmap_txn(space, op.response_txn)
