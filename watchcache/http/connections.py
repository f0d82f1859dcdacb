"""Who holds the service's sockets, for how long, and how many may be held without credentials.

A socket is cheap to open and a file descriptor is not: anyone who can reach the port could otherwise
hold every descriptor the process has, and with them every tenant's service. So, as Go's
``http.Server`` (``ReadHeaderTimeout``, ``IdleTimeout``) does for kube-apiserver:

- a new connection must deliver a complete request (its headers) within ``header_timeout`` (over
  TLS, the handshake too), and a kept-alive one may idle ``idle_timeout`` between requests (aiohttp's
  keep-alive timer, which also closes a connection trickling a later request's headers);
- connections that have not yet made an authenticated request are capped at ``max_unauthenticated``
  and at a quarter of the process's file descriptors, whichever is lower: at the cap the oldest of
  them is closed to make room, so a flood of idle or trickling sockets cycles through its own slots
  while a real client, whose request arrives at once, gets in, and three quarters of the descriptors
  stay for authenticated clients;
- requests without valid credentials are rate limited per source address (429, and the connection
  is closed);
- a tenant's connections (attributed by the credentials of their first request) are counted against
  its ``maxConnections``.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from ..errors import TooManyRequestsError

__all__ = ["ConnectionGuard", "ConnectionSettings", "GuardedSite", "TooManyConnectionsError"]

log = logging.getLogger(__name__)

# Source addresses whose request rate is remembered (least recently seen forgotten first).
_MAX_ADDRESSES = 4096


@dataclass(frozen=True, kw_only=True)
class ConnectionSettings:
    """Timeouts and caps on the service's connections."""

    header_timeout: float = 10.0
    """Seconds a new connection has to complete its TLS handshake and send a whole request header."""
    idle_timeout: float = 60.0
    """Seconds a kept-alive connection may wait between requests before it is closed."""
    max_unauthenticated: int = 512
    """Connections that have not made an authenticated request yet (at most a quarter of the
    process's file descriptors); at the cap the oldest is closed."""
    anonymous_requests_per_second: float = 20.0
    """Requests without valid credentials (401s and the open health endpoints) per source address."""
    anonymous_burst: int = 40
    """Such requests allowed at once above the sustained rate."""


class TooManyConnectionsError(TooManyRequestsError):
    """A 429 after which the connection is closed (its slot is what is scarce)."""


class _Bucket:
    __slots__ = ("tokens", "updated")

    def __init__(self, tokens: float, now: float) -> None:
        self.tokens = tokens
        self.updated = now


class _Connection:
    __slots__ = ("owner", "timer", "transport")

    def __init__(self, transport: asyncio.Transport, timer: asyncio.TimerHandle | None) -> None:
        self.transport = transport
        self.timer = timer
        #: The tenant its first authenticated request named ("" with authentication off); None: none yet.
        self.owner: str | None = None


def _open_files_limit() -> int:
    """The process's soft limit on open files (a large number where there is none)."""
    try:
        import resource  # noqa: PLC0415 - POSIX only

        soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    except (ImportError, OSError, ValueError):
        return 1 << 20
    return soft if soft != resource.RLIM_INFINITY else 1 << 20


class ConnectionGuard:
    """Tracks every connection of one server (see the module docstring)."""

    def __init__(self, settings: ConnectionSettings) -> None:
        self.settings = settings
        #: The cap on unauthenticated connections in effect (see the module docstring).
        self.max_unauthenticated = min(settings.max_unauthenticated, max(1, _open_files_limit() // 4))
        self._connections: dict[object, _Connection] = {}
        self._unauthenticated: OrderedDict[object, _Connection] = OrderedDict()
        self._owned: dict[str, int] = {}
        self._buckets: OrderedDict[str, _Bucket] = OrderedDict()
        self._server_lost: Callable[[Any, BaseException | None], None] | None = None
        #: Connections closed for not sending a request in time, and to make room.
        self.timed_out = 0
        self.evicted = 0

    def attach(self, server: web.Server) -> None:
        """Follow ``server``'s connections. aiohttp's ``Server`` is told of each connection's start and
        end by its protocol; the guard hooks those two calls of this one instance."""
        made, lost = server.connection_made, server.connection_lost

        def connection_made(handler: Any, transport: asyncio.Transport) -> None:
            made(handler, transport)
            self._opened(handler, transport)

        def connection_lost(handler: Any, exc: BaseException | None = None) -> None:
            lost(handler, exc)
            self._closed(handler)

        self._server_lost = lost
        server.connection_made = connection_made  # type: ignore[method-assign]
        server.connection_lost = connection_lost  # type: ignore[method-assign]

    @property
    def open(self) -> int:
        return len(self._connections)

    @property
    def unauthenticated(self) -> int:
        return len(self._unauthenticated)

    def owned_by(self, tenant: str) -> int:
        return self._owned.get(tenant, 0)

    # -- connection lifecycle ----------------------------------------------------------------------

    def opened(self, connection: object, transport: asyncio.Transport) -> None:
        """A connection not served by aiohttp (HTTP/2, or one whose protocol is not chosen yet)."""
        self._opened(connection, transport)

    def closed(self, connection: object) -> None:
        """A connection of :meth:`opened`, or one handed over (see :meth:`hand_over`), is closed."""
        self._closed(connection)

    def _opened(self, handler: object, transport: asyncio.Transport) -> None:
        loop = asyncio.get_running_loop()
        while len(self._unauthenticated) >= self.max_unauthenticated:
            _, oldest = self._unauthenticated.popitem(last=False)
            self.evicted += 1
            oldest.transport.abort()
        timer = loop.call_later(self.settings.header_timeout, self._expire, handler)
        connection = _Connection(transport, timer)
        self._connections[handler] = connection
        self._unauthenticated[handler] = connection

    def _expire(self, handler: object) -> None:
        connection = self._connections.get(handler)
        if connection is not None and connection.timer is not None:
            connection.timer = None
            self.timed_out += 1
            connection.transport.abort()

    def _closed(self, handler: object) -> None:
        connection = self._connections.pop(handler, None)
        if connection is None:
            return
        self._unauthenticated.pop(handler, None)
        if connection.timer is not None:
            connection.timer.cancel()
        if connection.owner is not None:
            left = self._owned[connection.owner] - 1
            if left:
                self._owned[connection.owner] = left
            else:
                del self._owned[connection.owner]

    def hand_over(self, handler: object, owner: object) -> None:
        """``owner`` has taken ``handler``'s connection away from aiohttp (a parked watch): aiohttp's
        server forgets the connection (once its handler's task ends), the guard keeps counting it
        until :meth:`closed`."""
        connection = self._connections.pop(handler, None)
        if connection is None:
            return
        self._connections[owner] = connection
        if self._unauthenticated.pop(handler, None) is not None:
            self._unauthenticated[owner] = connection
        if self._server_lost is not None:
            self._server_lost(handler, None)

    # -- requests ------------------------------------------------------------------------------------

    @staticmethod
    def _of(request: web.BaseRequest) -> object:
        """The connection ``request`` came on: aiohttp's protocol, or an HTTP/2 stream's connection."""
        protocol: object = request.protocol
        return getattr(protocol, "connection", protocol)

    def request_started(self, request: web.BaseRequest) -> None:
        """A whole request header arrived: the connection is out of its header timeout."""
        connection = self._connections.get(self._of(request))
        if connection is not None and connection.timer is not None:
            connection.timer.cancel()
            connection.timer = None

    def authenticated(self, request: web.BaseRequest, tenant: str, max_connections: int | None) -> None:
        """The request authenticated as ``tenant`` ("" with authentication off): its connection is
        the tenant's from now on. 429 (and the connection closed) when that is one more than the
        tenant's ``max_connections``."""
        key = self._of(request)
        connection = self._connections.get(key)
        if connection is None or connection.owner is not None:
            return
        count = self._owned.get(tenant, 0)
        if max_connections is not None and count >= max_connections:
            raise TooManyConnectionsError(
                f'tenant "{tenant}" has {count} open connections, its limit; close some first',
                retry_after=5,
            )
        self._unauthenticated.pop(key, None)
        connection.owner = tenant
        self._owned[tenant] = count + 1

    def anonymous(self, request: web.BaseRequest) -> None:
        """A request without valid credentials: 429 (and the connection closed) when its source
        address is over its rate."""
        address = request.remote or ""
        settings = self.settings
        now = asyncio.get_running_loop().time()
        bucket = self._buckets.get(address)
        if bucket is None:
            bucket = self._buckets[address] = _Bucket(float(settings.anonymous_burst), now)
            if len(self._buckets) > _MAX_ADDRESSES:
                self._buckets.popitem(last=False)
        else:
            self._buckets.move_to_end(address)
            rate = settings.anonymous_requests_per_second
            bucket.tokens = min(settings.anonymous_burst, bucket.tokens + (now - bucket.updated) * rate)
            bucket.updated = now
        if bucket.tokens < 1:
            raise TooManyConnectionsError(
                "too many requests without valid credentials from this address; slow down", retry_after=1
            )
        bucket.tokens -= 1


class GuardedSite(web.BaseSite):
    """aiohttp's ``TCPSite``, with the TLS handshake bounded by the guard's header timeout."""

    __slots__ = ("_bound_port", "_handshake_timeout", "_host", "_port", "_protocol")

    def __init__(
        self,
        runner: web.BaseRunner,
        host: str,
        port: int,
        *,
        ssl_context: ssl.SSLContext | None,
        handshake_timeout: float,
        backlog: int = 1024,
        protocol: Callable[[], asyncio.BaseProtocol] | None = None,
    ) -> None:
        """``protocol``: makes each connection's protocol (default: the runner's aiohttp server)."""
        super().__init__(runner, ssl_context=ssl_context, backlog=backlog)
        self._protocol = protocol
        self._host = host
        self._port = port
        self._handshake_timeout = handshake_timeout
        self._bound_port = port

    @property
    def name(self) -> str:
        scheme = "https" if self._ssl_context else "http"
        return f"{scheme}://{self._host}:{self._bound_port}"

    async def start(self) -> None:
        await super().start()
        server = self._runner.server
        assert server is not None
        self._server = await asyncio.get_running_loop().create_server(
            self._protocol or server,
            self._host,
            self._port,
            ssl=self._ssl_context,
            ssl_handshake_timeout=self._handshake_timeout if self._ssl_context else None,
            backlog=self._backlog,
            reuse_address=True,
        )
        if self._server.sockets:
            self._bound_port = self._server.sockets[0].getsockname()[1]
