"""The etcd client: one gRPC channel, unary calls with deadlines, transactions and watch streams."""

from __future__ import annotations

import asyncio
import ipaddress
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import grpc
from aetcd import rpc

from ..errors import EtcdUnreachableError, StatusError, TimedOutError
from .errors import key_value, translate
from .health import EtcdHealth
from .types import EtcdTLS, KeyValue, RangeResult, TxnResult
from .watch import EtcdWatch

__all__ = ["EtcdClient"]

log = logging.getLogger(__name__)

# etcd's default limit on a request is 1.5 MiB, but responses (ranges, watch batches) can be larger.
_MAX_MESSAGE = 256 * 1024 * 1024


def _grpc_target(endpoints: Sequence[str]) -> tuple[str, bool]:
    """One gRPC target for all endpoints, and whether it uses TLS.

    Several endpoints become one ``ipv4:``/``ipv6:`` target, so grpc fails over between them by itself.
    """
    if not endpoints:
        raise ValueError("no etcd endpoint given")
    hosts: list[tuple[str, int]] = []
    schemes = set()
    for endpoint in endpoints:
        url = urlsplit(endpoint if "://" in endpoint else f"http://{endpoint}")
        if url.scheme not in ("http", "https") or not url.hostname:
            raise ValueError(f"bad etcd endpoint {endpoint!r}: want http(s)://host:port")
        schemes.add(url.scheme)
        hosts.append((url.hostname, url.port or 2379))
    if len(schemes) > 1:
        raise ValueError("etcd endpoints mix http and https")
    secure = schemes == {"https"}
    if len(hosts) == 1:
        host, port = hosts[0]
        return (f"[{host}]:{port}" if ":" in host else f"{host}:{port}"), secure
    try:
        addresses = [ipaddress.ip_address("127.0.0.1" if host == "localhost" else host) for host, _ in hosts]
    except ValueError:
        raise ValueError(
            "several etcd endpoints must be IP addresses (a DNS name needs a single endpoint)"
        ) from None
    if all(a.version == 4 for a in addresses):
        return "ipv4:" + ",".join(f"{a}:{p}" for a, (_, p) in zip(addresses, hosts, strict=True)), secure
    if all(a.version == 6 for a in addresses):
        return (
            "ipv6:" + ",".join(f"[{a}]:{p}" for a, (_, p) in zip(addresses, hosts, strict=True)),
            secure,
        )
    raise ValueError("etcd endpoints mix IPv4 and IPv6 addresses")


async def _read_optional(path: str | None) -> bytes | None:
    if path is None:
        return None
    return await asyncio.to_thread(Path(path).read_bytes)


class EtcdClient:
    """A connection to one etcd cluster: unary calls with deadlines, transactions and watch streams."""

    def __init__(
        self,
        endpoints: Sequence[str],
        *,
        request_timeout: float = 5.0,
        tls: EtcdTLS | None = None,
    ) -> None:
        self._target, self._secure = _grpc_target(endpoints)
        self._tls = tls
        self.request_timeout = request_timeout
        self._channel: grpc.aio.Channel | None = None
        self._kv: Any = None
        self._watch: Any = None
        self._maintenance: Any = None
        self._lease: Any = None
        #: Whether etcd serves linearizable requests, as the storage's probe judges it (unreachable, or
        #: no quorum); any successful request ends an outage.
        self.health = EtcdHealth()

    async def connect(self) -> None:
        if self._channel is not None:
            return
        options = [
            ("grpc.max_receive_message_length", _MAX_MESSAGE),
            ("grpc.max_send_message_length", _MAX_MESSAGE),
            # Keep the watch streams' connection checked, so a vanished (or frozen) member is noticed.
            # etcd refuses pings more often than every 5 s (--grpc-keepalive-min-time) and without an
            # open stream, answering GOAWAY "too_many_pings", which would break every stream.
            ("grpc.keepalive_time_ms", 10_000),
            ("grpc.keepalive_timeout_ms", 5_000),
            ("grpc.keepalive_permit_without_calls", 0),
            ("grpc.initial_reconnect_backoff_ms", 100),
            ("grpc.max_reconnect_backoff_ms", 2_000),
        ]
        if self._secure or self._tls is not None:
            tls = self._tls or EtcdTLS()
            credentials = grpc.ssl_channel_credentials(
                root_certificates=await _read_optional(tls.cafile),
                private_key=await _read_optional(tls.keyfile),
                certificate_chain=await _read_optional(tls.certfile),
            )
            self._channel = grpc.aio.secure_channel(self._target, credentials, options=options)
        else:
            self._channel = grpc.aio.insecure_channel(self._target, options=options)
        self._kv = rpc.KVStub(self._channel)
        self._watch = rpc.WatchStub(self._channel)
        self._maintenance = rpc.MaintenanceStub(self._channel)
        self._lease = rpc.LeaseStub(self._channel)

    async def close(self) -> None:
        channel, self._channel = self._channel, None
        if channel is not None:
            await channel.close()

    async def __aenter__(self) -> EtcdClient:
        await self.connect()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    @property
    def healthy(self) -> bool:
        """False while etcd is judged down (see :attr:`health`)."""
        return self.health.serving

    def _stub(self, stub: Any) -> Any:
        if stub is None:
            raise RuntimeError("EtcdClient is not connected: call connect() or use 'async with'")
        return stub

    async def _call(self, what: str, method: Any, request: Any, timeout: float | None = None) -> Any:
        if timeout is None:
            # While etcd is known to be down, fail fast rather than hold the caller for the full
            # deadline; a success (etcd is back) restores the normal deadline at once.
            timeout = self.request_timeout if self.healthy else min(self.request_timeout, 1.0)
        try:
            response = await method(request, timeout=timeout)
        except grpc.aio.AioRpcError as err:
            error = translate(err, what, timeout)
            if isinstance(error, TimedOutError) and not self.healthy:
                # No answer from an etcd already judged down: it is not slow, it cannot be reached.
                error = EtcdUnreachableError(error.message)
            raise error from err
        self.health.answered()
        return response

    # -- the etcd front's calls, as they are ----------------------------------------------------------

    def _service(self, service: str) -> Any:
        stubs = {"KV": self._kv, "Lease": self._lease, "Maintenance": self._maintenance, "Watch": self._watch}
        return self._stub(stubs[service])

    async def forward(self, service: str, method: str, request: Any, *, timeout: float | None = None) -> Any:
        """One etcd call passed on as it is, for the etcd front: ``request`` and the answer are
        etcd's own protobufs, and a failure raises ``grpc.aio.AioRpcError`` unchanged (its code and
        message are etcd's, which etcd's clients match on)."""
        call = getattr(self._service(service), method)
        # Not proof that etcd is back: some of these (a serializable range, Status) are answered by a
        # member without quorum. The probe's next read ends an outage.
        return await call(request, timeout=self.request_timeout if timeout is None else timeout)

    def forward_stream(self, service: str, method: str, *, metadata: tuple[tuple[str, str], ...] = ()) -> Any:
        """A bidirectional etcd stream (Watch, LeaseKeepAlive) for the etcd front, as it is."""
        return getattr(self._service(service), method)(metadata=metadata)

    async def probe(self, key: bytes, timeout: float) -> StatusError | None:
        """One linearizable read of ``key`` within ``timeout``: None when etcd served it, else why not."""
        try:
            await self._call(
                "a read", self._stub(self._kv).Range, rpc.RangeRequest(key=key, count_only=True), timeout
            )
        except StatusError as err:
            return err
        return None

    # -- reads ---------------------------------------------------------------------------------------

    async def range(
        self,
        key: bytes,
        range_end: bytes = b"",
        *,
        revision: int = 0,
        limit: int = 0,
        count_only: bool = False,
        serializable: bool = False,
    ) -> RangeResult:
        """A range read; linearizable unless ``serializable``. A compacted revision raises Expired."""
        request = rpc.RangeRequest(
            key=key,
            range_end=range_end,
            revision=revision,
            limit=limit,
            count_only=count_only,
            serializable=serializable,
        )
        resp = await self._call("range", self._stub(self._kv).Range, request)
        return RangeResult(
            revision=resp.header.revision,
            kvs=tuple(key_value(kv) for kv in resp.kvs),
            more=resp.more,
            count=resp.count,
        )

    async def get(self, key: bytes, *, revision: int = 0) -> tuple[int, KeyValue | None]:
        """The key at ``revision`` (0: now, linearizable), with the store revision of the read."""
        result = await self.range(key, revision=revision)
        return result.revision, (result.kvs[0] if result.kvs else None)

    async def current_revision(self, key: bytes) -> int:
        """The store revision, by a linearizable read of one key.

        Every write etcd acknowledged before this call started has a revision at or below the result.
        """
        result = await self.range(key, count_only=True)
        return result.revision

    # -- writes ---------------------------------------------------------------------------------------

    async def put(self, key: bytes, value: bytes) -> int:
        """An unconditional put; returns its revision."""
        resp = await self._call("put", self._stub(self._kv).Put, rpc.PutRequest(key=key, value=value))
        return int(resp.header.revision)

    async def _txn(self, what: str, compare: Any, success: Any, failure: Any) -> Any:
        request = rpc.TxnRequest(compare=[compare], success=[success], failure=[failure])
        return await self._call(what, self._stub(self._kv).Txn, request)

    async def create(self, key: bytes, value: bytes) -> TxnResult:
        """Put ``key`` only if it does not exist; on failure ``current`` is the existing key."""
        resp = await self._txn(
            "create",
            rpc.Compare(result=rpc.Compare.EQUAL, target=rpc.Compare.CREATE, key=key, create_revision=0),
            rpc.RequestOp(request_put=rpc.PutRequest(key=key, value=value)),
            rpc.RequestOp(request_range=rpc.RangeRequest(key=key)),
        )
        return self._result(resp, failure_range=True)

    async def replace(self, key: bytes, value: bytes, *, mod_revision: int) -> TxnResult:
        """Put ``key`` only if its mod_revision is still ``mod_revision``; on failure ``current`` is
        the key's present state (None if it was deleted)."""
        resp = await self._txn(
            "update",
            rpc.Compare(result=rpc.Compare.EQUAL, target=rpc.Compare.MOD, key=key, mod_revision=mod_revision),
            rpc.RequestOp(request_put=rpc.PutRequest(key=key, value=value)),
            rpc.RequestOp(request_range=rpc.RangeRequest(key=key)),
        )
        return self._result(resp, failure_range=True)

    async def delete(self, key: bytes, *, mod_revision: int) -> TxnResult:
        """Delete ``key`` only if its mod_revision is still ``mod_revision``. On success ``current``
        is the deleted state; on failure the present one (None if already gone)."""
        resp = await self._txn(
            "delete",
            rpc.Compare(result=rpc.Compare.EQUAL, target=rpc.Compare.MOD, key=key, mod_revision=mod_revision),
            rpc.RequestOp(request_delete_range=rpc.DeleteRangeRequest(key=key, prev_kv=True)),
            rpc.RequestOp(request_range=rpc.RangeRequest(key=key)),
        )
        if resp.succeeded:
            prev = resp.responses[0].response_delete_range.prev_kvs
            return TxnResult(True, resp.header.revision, key_value(prev[0]) if prev else None)
        return self._result(resp, failure_range=True)

    @staticmethod
    def _result(resp: Any, *, failure_range: bool) -> TxnResult:
        current = None
        if not resp.succeeded and failure_range:
            kvs = resp.responses[0].response_range.kvs
            current = key_value(kvs[0]) if kvs else None
        return TxnResult(bool(resp.succeeded), int(resp.header.revision), current)

    # -- maintenance ----------------------------------------------------------------------------------

    async def compact(self, revision: int) -> None:
        """Compact history below ``revision`` and wait until it is physically applied."""
        await self._call(
            "compact",
            self._stub(self._kv).Compact,
            rpc.CompactionRequest(revision=revision, physical=True),
        )

    async def version(self) -> str:
        """The etcd server version of the member answering, e.g. ``"3.4.23"``."""
        resp = await self._call("status", self._stub(self._maintenance).Status, rpc.StatusRequest())
        return str(resp.version)

    # -- watch ---------------------------------------------------------------------------------------

    def watch(self, key: bytes, range_end: bytes, *, start_revision: int) -> EtcdWatch:
        """One watch stream of ``[key, range_end)`` from ``start_revision``, with etcd's periodic
        progress notifications. Use as ``async with client.watch(...) as w: async for ...``."""
        return EtcdWatch(self._stub(self._watch), key, range_end, start_revision)
