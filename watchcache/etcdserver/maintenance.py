"""etcd's Maintenance.Status and Auth.Authenticate; every other Maintenance and Auth call, and the
Cluster service, answer ``Unimplemented`` (never a hang).

Status is etcd's own answer, with the version reported at least 3.4.31: kube-apiserver turns on its
consistent reads from its own watch cache (and WatchList) only from etcd 3.4.31 / 3.5.13, whose
RequestProgress is ordered with events — and the front's is (see :mod:`.watch`).
"""

from __future__ import annotations

from typing import Any

import grpc
from aetcd.rpc import rpc_pb2

from .errors import EtcdError, abort, passed_on
from .front import Context, Front, rpc
from .session import Caller

__all__ = ["Auth", "Maintenance", "reported_version"]

_ORDERED_PROGRESS = (3, 4, 31)


def reported_version(etcd_version: str) -> str:
    """etcd's version, or 3.4.31 if older (see the module docstring)."""
    try:
        parts = tuple(int(p) for p in etcd_version.split("-", maxsplit=1)[0].split(".")[:3])
    except ValueError:
        parts = ()
    return etcd_version if parts >= _ORDERED_PROGRESS else ".".join(map(str, _ORDERED_PROGRESS))


def _refuse_the_rest(cls: type, service: str) -> None:
    """Every method of ``service`` that ``cls`` does not define answers ``Unimplemented``."""
    for method in rpc_pb2.DESCRIPTOR.services_by_name[service].methods:
        if method.name in cls.__dict__:
            continue
        what = f"{service}.{method.name} is not served by watchcache's etcd front"

        async def refuse(self: Any, request: Any, context: Context, what: str = what) -> None:
            await context.abort(grpc.StatusCode.UNIMPLEMENTED, what)

        setattr(cls, method.name, refuse)


class Maintenance:
    def __init__(self, front: Front) -> None:
        self.front = front

    @rpc
    async def Status(self, caller: Caller, request: Any, context: Context) -> Any:
        status = await self.front.forward("Maintenance", "Status", rpc_pb2.StatusRequest())
        status.version = reported_version(status.version)
        return status


class Auth:
    """Authenticate: a token for a tenant (name) and one of its bearer tokens (password)."""

    def __init__(self, front: Front) -> None:
        self.front = front

    async def Authenticate(self, request: Any, context: Context) -> Any:
        try:
            token = self.front.sessions.authenticate(request.name, request.password)
        except EtcdError as err:
            await context.abort(err.code, err.message)
        try:
            current = await self.front.current_revision()
        except grpc.aio.AioRpcError as err:  # etcd's own error, as etcd's Authenticate would fail
            await abort(context, passed_on(err))
        return rpc_pb2.AuthenticateResponse(header=self.front.header(current), token=token)


_refuse_the_rest(Maintenance, "Maintenance")
_refuse_the_rest(Auth, "Auth")
