"""etcd's Lease service, passed to etcd, each lease owned by the tenant that granted it.

Ownership is a marker key in etcd, ``{prefix}-watchcache/leases/{id}``, attached to the lease itself (so
it goes when the lease goes, and every replica of watchcache sees it). A lease a tenant does not own is,
to that tenant, a lease that does not exist: revoke and keys attached to it are NotFound, TimeToLive
answers TTL -1 and KeepAlive TTL 0, as etcd answers for unknown leases; Leases lists only its own.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

from aetcd.rpc import rpc_pb2

from .errors import LEASE_NOT_FOUND, EtcdError, abort
from .front import FAILURES, Context, Front, fail, rpc
from .session import Caller

__all__ = ["Lease", "Leases"]


class Leases:
    """Who owns which lease (see the module docstring)."""

    def __init__(self, front: Front, prefix: str) -> None:
        self.front = front
        self._base = f"{prefix}-watchcache/leases/".encode()

    def marker(self, lease: int) -> bytes:
        return self._base + b"%x" % lease

    async def owned(self, caller: Caller, lease: int) -> bool:
        response = await self.front.forward("KV", "Range", rpc_pb2.RangeRequest(key=self.marker(lease)))
        return bool(response.kvs) and response.kvs[0].value == caller.tenant.encode()

    async def check_owned(self, caller: Caller, lease: int) -> None:
        if not await self.owned(caller, lease):
            raise LEASE_NOT_FOUND()

    async def mark(self, caller: Caller, lease: int) -> None:
        put = rpc_pb2.PutRequest(key=self.marker(lease), value=caller.tenant.encode(), lease=lease)
        await self.front.forward("KV", "Put", put)

    async def mine(self, caller: Caller) -> list[int]:
        listed = rpc_pb2.RangeRequest(key=self._base, range_end=self._base[:-1] + b"0")
        response = await self.front.forward("KV", "Range", listed)
        return [
            int(kv.key[len(self._base) :], 16) for kv in response.kvs if kv.value == caller.tenant.encode()
        ]


class Lease:
    """The Lease service (see the module docstring)."""

    def __init__(self, front: Front, leases: Leases) -> None:
        self.front = front
        self._leases = leases

    @rpc
    async def LeaseGrant(self, caller: Caller, request: Any, context: Context) -> Any:
        response = await self.front.forward("Lease", "LeaseGrant", request)
        if not response.error:
            try:
                await self._leases.mark(caller, response.ID)
            except BaseException:
                await self.front.forward("Lease", "LeaseRevoke", rpc_pb2.LeaseRevokeRequest(ID=response.ID))
                raise
        return response

    @rpc
    async def LeaseRevoke(self, caller: Caller, request: Any, context: Context) -> Any:
        await self._leases.check_owned(caller, request.ID)
        return await self.front.forward("Lease", "LeaseRevoke", request)

    @rpc
    async def LeaseTimeToLive(self, caller: Caller, request: Any, context: Context) -> Any:
        if not await self._leases.owned(caller, request.ID):
            current = await self.front.current_revision()
            return rpc_pb2.LeaseTimeToLiveResponse(header=self.front.header(current), ID=request.ID, TTL=-1)
        response = await self.front.forward("Lease", "LeaseTimeToLive", request)
        space = caller.keyspace
        keys = [space.to_virtual(k) for k in response.keys if space.readable_key(k)]
        del response.keys[:]
        response.keys.extend(keys)
        return response

    @rpc
    async def LeaseLeases(self, caller: Caller, request: Any, context: Context) -> Any:
        mine = await self._leases.mine(caller)
        current = await self.front.current_revision()
        return rpc_pb2.LeaseLeasesResponse(
            header=self.front.header(current), leases=[rpc_pb2.LeaseStatus(ID=i) for i in mine]
        )

    async def LeaseKeepAlive(self, requests: AsyncIterator[Any], context: Context) -> AsyncIterator[Any]:
        try:
            caller = self.front.sessions.caller(context)
        except EtcdError as err:
            await abort(context, err)
        upstream = self.front.etcd.forward_stream("Lease", "LeaseKeepAlive")
        owned: set[int] = set()
        try:
            async for request in requests:
                if caller.admission is not None:
                    caller.admission.check_rate()
                if request.ID not in owned and await self._leases.owned(caller, request.ID):
                    owned.add(request.ID)
                if request.ID in owned:
                    await upstream.write(request)
                    response = await upstream.read()
                    self.front.learn(response.header)
                    yield response
                else:
                    current = await self.front.current_revision()
                    yield rpc_pb2.LeaseKeepAliveResponse(
                        header=self.front.header(current), ID=request.ID, TTL=0
                    )
        except FAILURES as err:
            await fail(context, err)
        finally:
            upstream.cancel()
