"""The etcd front's gRPC server: its services, its transport settings, and its tenants' keyspaces.

grpcio serves the etcd v3 API (proto package ``etcdserverpb``, from the stubs aetcd ships) on its own
port, with the REST front's TLS: a serving certificate, and with a client CA every client must present
a certificate from it (as etcd's ``--client-cert-auth``), whose CN names the tenant. Keepalive is
etcd's: clients may ping every 5 s, with or without calls in flight (grpcio's defaults would answer
kube-apiserver's 30 s pings on an idle watch with GOAWAY). Requests up to etcd's limit plus room for
the envelope are accepted; etcd itself refuses what is too large, in its own words.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import grpc
from aetcd.rpc import rpc_pb2, rpc_pb2_grpc

from ..api.storage import Storage
from ..tenancy.auth import Authenticator
from ..tenancy.limits import Admission
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


async def _read(path: str) -> bytes:
    return await asyncio.to_thread(Path(path).read_bytes)


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
        self._server: grpc.aio.Server | None = None

    async def listen(self, host: str, port: int, tls: EtcdFrontTLS | None) -> tuple[str, int]:
        """Start serving; returns the bound (host, port)."""
        server = grpc.aio.server(
            options=[
                ("grpc.max_receive_message_length", _MAX_REQUEST),
                ("grpc.max_send_message_length", -1),
                ("grpc.http2.min_recv_ping_interval_without_data_ms", 5000),
                ("grpc.http2.max_ping_strikes", 0),
                ("grpc.keepalive_permit_without_calls", 1),
            ]
        )
        front = self.front
        leases = Leases(front, front.storage.prefix)
        rpc_pb2_grpc.add_KVServicer_to_server(KV(front, leases), server)
        rpc_pb2_grpc.add_LeaseServicer_to_server(Lease(front, leases), server)
        rpc_pb2_grpc.add_MaintenanceServicer_to_server(Maintenance(front), server)
        rpc_pb2_grpc.add_AuthServicer_to_server(Auth(front), server)
        watch = Watch(front, self.settings.write_timeout)
        handler = grpc.stream_stream_rpc_method_handler(
            watch.watch, request_deserializer=rpc_pb2.WatchRequest.FromString
        )
        server.add_generic_rpc_handlers(
            (grpc.method_handlers_generic_handler("etcdserverpb.Watch", {"Watch": handler}),)
        )
        address = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
        if tls is None:
            bound = server.add_insecure_port(address)
        else:
            ca = await _read(tls.client_ca_file) if tls.client_ca_file else None
            credentials = grpc.ssl_server_credentials(
                [(await _read(tls.key_file), await _read(tls.cert_file))],
                root_certificates=ca,
                require_client_auth=ca is not None,
            )
            bound = server.add_secure_port(address, credentials)
        await server.start()
        self._server = server
        return host, bound

    async def close(self, grace: float = 5.0) -> None:
        server, self._server = self._server, None
        if server is not None:
            with contextlib.suppress(Exception):
                await server.stop(grace)
