"""The etcd front's server: its services on HTTP/2 (:mod:`watchcache.transport`), and its tenants.

The etcd v3 API (proto package ``etcdserverpb``, with the messages aetcd ships) is served on its own
port, with the REST front's TLS: a serving certificate offering ``h2`` (ALPN, which gRPC clients
require), and with a client CA, client certificates verified when presented — the CN names the tenant;
a client without one authenticates with an etcd token instead. PINGs are answered whenever they come
(kube-apiserver's client pings an idle watch every 30 s). Every RPC the servicers define is served;
any other answers ``Unimplemented``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import ssl
import weakref
from collections.abc import Mapping
from dataclasses import dataclass

from aetcd.rpc import rpc_pb2

from ..api.storage import Storage
from ..tenancy.auth import Authenticator
from ..tenancy.limits import Admission
from ..transport.grpc import GrpcServer, Method
from ..transport.http2 import DEFAULT_SETTINGS, Connection, server_ssl
from .front import Front
from .keyspace import Keyspace
from .kv import KV
from .lease import Lease, Leases
from .maintenance import Auth, Maintenance
from .session import ANONYMOUS, Sessions
from .watch import Watch

__all__ = ["EtcdFront", "EtcdFrontSettings", "EtcdFrontTLS"]

log = logging.getLogger(__name__)

_MAX_REQUEST = 2 * 1024 * 1024  # etcd's: --max-request-bytes (1.5 MiB) + 512 KiB of envelope


@dataclass(frozen=True, kw_only=True)
class EtcdFrontSettings:
    """The etcd front's tuning."""

    progress_interval: float = 5.0
    """Seconds between progress notifications to an idle watch that asked for them (etcd's default is
    10 minutes; kube-apiserver's cacher uses them as bookmarks, so they come often)."""
    write_timeout: float = 60.0
    """Seconds a watch stream may stay blocked on a client that does not read before it is dropped."""


@dataclass(frozen=True, kw_only=True)
class EtcdFrontTLS:
    """The front's TLS (the REST front's flags)."""

    cert_file: str
    key_file: str
    client_ca_file: str | None = None
    """With it, every client must present a certificate from this CA; its CN is the tenant."""


async def _server_ssl(tls: EtcdFrontTLS) -> ssl.SSLContext:
    """The REST front's TLS, offering HTTP/2; client certificates verified when presented."""

    def build() -> ssl.SSLContext:
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(tls.cert_file, tls.key_file)
        if tls.client_ca_file:
            context.load_verify_locations(tls.client_ca_file)
            context.verify_mode = ssl.CERT_OPTIONAL
        return server_ssl(context)

    return await asyncio.to_thread(build)


def _methods(servicers: Mapping[str, object], watch: Watch) -> dict[str, Method]:
    """Every RPC the servicers define, by path, with its messages' codecs from etcd's descriptors."""
    methods: dict[str, Method] = {}
    for name, servicer in servicers.items():
        for rpc in rpc_pb2.DESCRIPTOR.services_by_name[name].methods:
            handler = getattr(servicer, rpc.name, None)
            if handler is None:
                continue
            request = getattr(rpc_pb2, rpc.input_type.name)
            response = getattr(rpc_pb2, rpc.output_type.name)
            methods[f"/etcdserverpb.{name}/{rpc.name}"] = Method(
                handler,
                request.FromString,
                response.SerializeToString,
                client_streaming=rpc.client_streaming,
                server_streaming=rpc.server_streaming,
            )
    methods["/etcdserverpb.Watch/Watch"] = Method(
        watch.watch, rpc_pb2.WatchRequest.FromString, None, client_streaming=True, server_streaming=True
    )
    return methods


def _keyspaces(
    storage: Storage, prefix: str, authenticator: Authenticator | None, groups: set[str]
) -> dict[str, Keyspace]:
    hidden = [r.cache.layout.progress_key for r in storage.resources]
    if authenticator is None:
        return {ANONYMOUS: Keyspace.of(tenant=ANONYMOUS, prefix=prefix, groups=groups, hidden=hidden)}
    return {
        t.name: Keyspace.of(
            tenant=t.name, prefix=prefix, groups=t.groups, read_groups=t.read_groups, hidden=hidden
        )
        for t in authenticator.tenants.values()
    }


class EtcdFront:
    """The etcd v3 API over the caches (see the package docstring)."""

    def __init__(
        self,
        *,
        storage: Storage,
        authenticator: Authenticator | None,
        admissions: Mapping[str, Admission],
        settings: EtcdFrontSettings | None = None,
    ) -> None:
        self.settings = settings or EtcdFrontSettings()
        groups = {r.spec.group for r in storage.resources}
        keyspaces = _keyspaces(storage, storage.prefix, authenticator, groups)
        sessions = Sessions(authenticator, keyspaces, admissions)
        self.front = Front(
            storage=storage, sessions=sessions, progress_interval=self.settings.progress_interval
        )
        self._server: asyncio.Server | None = None
        self._connections: weakref.WeakSet[Connection] = weakref.WeakSet()

    async def listen(self, host: str, port: int, tls: EtcdFrontTLS | None) -> tuple[str, int]:
        """Start serving; returns the bound (host, port)."""
        front = self.front
        leases = Leases(front, front.storage.prefix)
        server = GrpcServer(
            _methods(
                {
                    "KV": KV(front, leases),
                    "Lease": Lease(front, leases),
                    "Maintenance": Maintenance(front),
                    "Auth": Auth(front),
                },
                Watch(front, self.settings.write_timeout),
            ),
            max_message=_MAX_REQUEST,
        )
        context = await _server_ssl(tls) if tls is not None else None
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(
            lambda: self._connection(server),
            host,
            port,
            ssl=context,
            ssl_handshake_timeout=10.0 if context is not None else None,
            backlog=1024,
            reuse_address=True,
        )
        bound = self._server.sockets[0].getsockname()
        return host, int(bound[1])

    def _connection(self, server: GrpcServer) -> Connection:
        connection = Connection(server, settings=DEFAULT_SETTINGS)
        self._connections.add(connection)
        return connection

    async def close(self, grace: float = 5.0) -> None:
        """Stop accepting, give the calls in flight ``grace`` seconds, then close every connection."""
        server, self._server = self._server, None
        if server is None:
            return
        server.close()
        await asyncio.gather(*(c.shut(grace) for c in list(self._connections)))
        await self.front.close()
        with contextlib.suppress(Exception):
            await server.wait_closed()
