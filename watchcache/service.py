"""The running service: etcd (given or embedded), the storage, the fronts, and their shutdown.

Start-up happens in one order and is undone in reverse by one ``AsyncExitStack``: a private etcd (with
``--embedded-etcd``), the storage and its caches, the REST front's listener. On shutdown the listener
stops accepting first, then the caches stop (every open watch ends and its response is closed
cleanly), then the front finishes what is in flight, then etcd is closed.
"""

from __future__ import annotations

import contextlib
import logging
import ssl
from dataclasses import dataclass, field

from .api.storage import Storage
from .cache.settings import CacheSettings
from .config import Config
from .errors import ConfigError
from .etcd.process import EmbeddedEtcd
from .etcd.types import EtcdTLS
from .etcdserver.server import EtcdFront, EtcdFrontSettings, EtcdFrontTLS
from .http.server import APIServer
from .http.settings import ServerSettings
from .tenancy.auth import Authenticator, load_token_file
from .tenancy.limits import admissions

__all__ = ["Service", "ServiceOptions"]

log = logging.getLogger(__name__)


@dataclass(frozen=True, kw_only=True)
class ServiceOptions:
    """Everything ``watchcache serve`` is told by its flags and configuration file."""

    config: Config
    """Resources to serve (and tenants)."""
    etcd_servers: tuple[str, ...] = ()
    """etcd client URLs; empty with ``embedded_etcd``."""
    embedded_etcd: bool = False
    """Start a private etcd (``etcd`` from PATH) in a temporary directory, stopped on exit."""
    etcd_prefix: str = "/registry"
    """Key prefix in etcd."""
    etcd_tls: EtcdTLS | None = None
    """TLS towards etcd."""
    bind_address: str = "127.0.0.1"
    """Address to listen on."""
    port: int = 8080
    """Port to listen on (0: any free port)."""
    tls_cert_file: str | None = None
    """Serving certificate (PEM); with it the service speaks HTTPS."""
    tls_private_key_file: str | None = None
    """Private key of the serving certificate (PEM)."""
    client_ca_file: str | None = None
    """CA bundle that verifies client certificates (tenant = certificate CN)."""
    token_auth_file: str | None = None
    """kube-apiserver's token CSV (``token,user,uid,"groups"``); the user is the tenant name."""
    server: ServerSettings = field(default_factory=ServerSettings)
    cache: CacheSettings = field(default_factory=CacheSettings)
    etcd_listen_port: int | None = None
    """Serve the etcd v3 API on this port too (0: any free port; None: not at all), with the same
    bind address and TLS."""
    etcd_front: EtcdFrontSettings = field(default_factory=EtcdFrontSettings)
    request_timeout: float = 5.0
    """Deadline of each etcd request, in seconds."""


class Service:
    """One watchcache instance. ``await start()`` … ``await stop()`` (or ``async with``)."""

    def __init__(self, options: ServiceOptions) -> None:
        self.options = options
        self.etcd: EmbeddedEtcd | None = None
        self.storage: Storage | None = None
        self.api: APIServer | None = None
        self.etcd_front: EtcdFront | None = None
        #: The URL the service answers on, once started.
        self.url = ""
        #: Where the etcd front answers (``host:port``), once started with one.
        self.etcd_endpoint = ""
        self._stack = contextlib.AsyncExitStack()

    async def start(self) -> None:
        opts = self.options
        # Everything that can be refused is checked before anything is started.
        ssl_context = self._ssl_context()
        authenticator = self._authenticator()
        if not opts.etcd_servers and not opts.embedded_etcd:
            raise ValueError("no etcd: give --etcd-servers or --embedded-etcd")
        # Undone in reverse order on stop: the listener stops accepting, the caches stop (every open
        # watch ends and its response completes), the requests in flight finish, the etcd client
        # closes, the private etcd stops.
        stack = self._stack
        try:
            servers = list(opts.etcd_servers)
            if opts.embedded_etcd:
                self.etcd = await stack.enter_async_context(EmbeddedEtcd())
                servers = self.etcd.endpoints
            self.storage = await stack.enter_async_context(
                Storage(
                    servers,
                    prefix=opts.etcd_prefix,
                    settings=opts.cache,
                    etcd_tls=opts.etcd_tls,
                    request_timeout=opts.request_timeout,
                )
            )
            resources = [self.storage.resource(spec) for spec in opts.config.resources]
            limits = admissions(authenticator, resources)
            self.api = APIServer(
                storage=self.storage,
                resources=opts.config.resources,
                settings=opts.server,
                authenticator=authenticator,
                admissions=limits,
            )
            stack.push_async_callback(self.api.close)
            if opts.etcd_listen_port is not None:
                self.etcd_front = EtcdFront(
                    storage=self.storage,
                    authenticator=authenticator,
                    admissions=limits,
                    settings=opts.etcd_front,
                )
                stack.push_async_callback(self.etcd_front.close)
            stack.push_async_callback(self.storage.stop_caches)
            stack.push_async_callback(self.api.stop_accepting)
            host, port = await self.api.listen(opts.bind_address, opts.port, ssl_context)
            if self.etcd_front is not None:
                assert opts.etcd_listen_port is not None
                front_host, front_port = await self.etcd_front.listen(
                    opts.bind_address, opts.etcd_listen_port, self._etcd_front_tls()
                )
                self.etcd_endpoint = (
                    f"[{front_host}]:{front_port}" if ":" in front_host else f"{front_host}:{front_port}"
                )
        except BaseException:
            await self.stop()
            raise
        scheme = "https" if opts.tls_cert_file else "http"
        shown = f"[{host}]" if ":" in host else host
        self.url = f"{scheme}://{shown}:{port}"
        log.info("serving on %s", self.url)
        if self.etcd_endpoint:
            log.info("serving the etcd v3 API on %s", self.etcd_endpoint)
        if authenticator is None:
            log.warning("no tenants configured: authentication is OFF; use only on loopback")

    def _etcd_front_tls(self) -> EtcdFrontTLS | None:
        opts = self.options
        if not opts.tls_cert_file or not opts.tls_private_key_file:
            return None
        return EtcdFrontTLS(
            cert_file=opts.tls_cert_file,
            key_file=opts.tls_private_key_file,
            client_ca_file=opts.client_ca_file,
        )

    def _authenticator(self) -> Authenticator | None:
        tenants = self.options.config.tenants
        if tenants is None:
            if self.options.token_auth_file:
                raise ConfigError("--token-auth-file needs a 'tenants' section in the config")
            return None
        extra = load_token_file(self.options.token_auth_file) if self.options.token_auth_file else []
        return Authenticator(tenants, extra)

    def _ssl_context(self) -> ssl.SSLContext | None:
        opts = self.options
        if not opts.tls_cert_file:
            if opts.client_ca_file:
                raise ValueError("--client-ca-file needs --tls-cert-file (client certificates need TLS)")
            return None
        if not opts.tls_private_key_file:
            raise ValueError("--tls-cert-file needs --tls-private-key-file")
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(opts.tls_cert_file, opts.tls_private_key_file)
        if opts.client_ca_file:
            context.load_verify_locations(opts.client_ca_file)
            context.verify_mode = ssl.CERT_OPTIONAL
        return context

    async def stop(self) -> None:
        """Stop everything started, in reverse order (see :meth:`start`); idempotent."""
        await self._stack.aclose()

    async def __aenter__(self) -> Service:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()
