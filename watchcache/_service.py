"""The running service: etcd (given or embedded), the storage, the HTTP server, and their shutdown.

Start-up and shutdown happen in one order and are undone in reverse: a private etcd (with
``--embedded-etcd``), the storage and its caches, the HTTP listener. On shutdown the listener stops
accepting first, then the caches stop (every open watch ends and its response is closed cleanly), then
the HTTP server finishes what is in flight, then etcd is closed.
"""

from __future__ import annotations

import logging
import ssl
from dataclasses import dataclass, field

from ._auth import Authenticator, load_token_file
from ._cacher import CacheSettings
from ._config import Config, ConfigError
from ._embedded import EmbeddedEtcd
from ._etcd import EtcdTLS
from ._http import APIServer, ServerSettings
from ._storage import Storage

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
    request_timeout: float = 5.0
    """Deadline of each etcd request, in seconds."""


class Service:
    """One watchcache instance. ``await start()`` … ``await stop()`` (or ``async with``)."""

    def __init__(self, options: ServiceOptions) -> None:
        self.options = options
        self.etcd: EmbeddedEtcd | None = None
        self.storage: Storage | None = None
        self.api: APIServer | None = None
        #: The URL the service answers on, once started.
        self.url = ""

    async def start(self) -> None:
        opts = self.options
        # Everything that can be refused is checked before anything is started.
        ssl_context = self._ssl_context()
        authenticator = self._authenticator()
        if not opts.etcd_servers and not opts.embedded_etcd:
            raise ValueError("no etcd: give --etcd-servers or --embedded-etcd")
        try:
            servers = list(opts.etcd_servers)
            if opts.embedded_etcd:
                self.etcd = EmbeddedEtcd()
                await self.etcd.start()
                servers = self.etcd.endpoints
            self.storage = Storage(
                servers,
                prefix=opts.etcd_prefix,
                settings=opts.cache,
                etcd_tls=opts.etcd_tls,
                request_timeout=opts.request_timeout,
            )
            await self.storage.start()
            self.api = APIServer(
                storage=self.storage,
                resources=opts.config.resources,
                settings=opts.server,
                authenticator=authenticator,
            )
            host, port = await self.api.listen(opts.bind_address, opts.port, ssl_context)
        except BaseException:
            await self.stop()
            raise
        scheme = "https" if opts.tls_cert_file else "http"
        shown = f"[{host}]" if ":" in host else host
        self.url = f"{scheme}://{shown}:{port}"
        log.info("serving on %s", self.url)
        if authenticator is None:
            log.warning("no tenants configured: authentication is OFF; use only on loopback")

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
        if self.api is not None:
            await self.api.stop_accepting()
        if self.storage is not None:
            await self.storage.stop_caches()  # ends every watch: their responses complete
        if self.api is not None:
            await self.api.close()  # lets requests in flight finish
        if self.storage is not None:
            await self.storage.close()
            self.storage = None
        if self.etcd is not None:
            await self.etcd.stop()
            self.etcd = None

    async def __aenter__(self) -> Service:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()
