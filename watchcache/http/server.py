"""The REST front: Kubernetes paths over the embedded API, with aiohttp.

:class:`APIServer` owns the listener and the request path: who is calling (tenancy), which resource
and verb a path names (:mod:`.routes`), whether the tenant may and has room (authorization, limits),
and the handlers (:mod:`.read`, :mod:`.watch`, :mod:`.write`, :mod:`.documents`). Every failure becomes
a Kubernetes ``Status`` here (:meth:`APIServer._answer`, the one place), including aiohttp's own
errors and bugs (500). Every response is written under the write timeout (:mod:`.responses`), and
connections are timed and capped (:mod:`.connections`).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import ssl
from collections.abc import Awaitable, Callable, Mapping, Sequence
from urllib.parse import unquote

from aiohttp import web

from ..api.namespaces import NAMESPACES
from ..api.resource import Resource
from ..api.spec import ResourceSpec
from ..api.storage import Storage
from ..errors import (
    BadRequestError,
    InternalError,
    MethodNotAllowedError,
    NotFoundError,
    RequestEntityTooLargeError,
    StatusError,
)
from ..tenancy.auth import Authenticator, Tenant
from ..tenancy.limits import Admission
from ..tenancy.limits import admissions as make_admissions
from .connections import ConnectionGuard, GuardedSite, TooManyConnectionsError
from .documents import Documents
from .http2 import Listener
from .metrics import CONTENT_TYPE as METRICS_CONTENT_TYPE
from .metrics import Metrics
from .namespaces import NamespaceHandlers
from .read import Reads
from .responses import Observation, Responder
from .routes import Target, target_of, verb_of
from .settings import ServerSettings
from .tables import Tables
from .watch import Watches
from .wire import status_response
from .write import Writes

__all__ = ["APIServer"]

log = logging.getLogger(__name__)

Handler = Callable[[web.Request, Target], Awaitable[web.StreamResponse]]


class APIServer:
    """The aiohttp application serving every configured resource."""

    def __init__(
        self,
        *,
        storage: Storage,
        resources: Sequence[ResourceSpec],
        settings: ServerSettings | None = None,
        authenticator: Authenticator | None = None,
        admissions: Mapping[str, Admission] | None = None,
    ) -> None:
        """``admissions``: each tenant's limits, when shared with another front (else made here)."""
        self.storage = storage
        #: None: no tenants are configured and authentication is off.
        self.authenticator = authenticator
        self.settings = settings or ServerSettings()
        self.metrics = Metrics(storage)
        self.specs = tuple(resources)
        self._resources: dict[tuple[str, str], Resource] = {
            (spec.group, spec.resource): storage.resource(spec) for spec in self.specs
        }
        if admissions is None:
            admissions = make_admissions(authenticator, list(self._resources.values()))
        self._admission = admissions
        self.connections = ConnectionGuard(self.settings.connections)
        self._out = Responder(self.settings.write_timeout)
        self._documents = Documents(self.specs, self._caller)
        tables = Tables([*self.specs, NAMESPACES])
        reads, writes = Reads(self._out, tables), Writes(self.settings.max_body_bytes)
        watches = self._watches = Watches(
            self._out, self.settings.min_request_timeout, tables, connections=self.connections
        )
        self._namespaces = NamespaceHandlers(storage, self.metrics, self._out, watches, tables)
        self._handlers: dict[str, Handler] = {
            "GET": reads.get,
            "LIST": reads.list,
            "WATCH": watches.watch,
            "CREATE": writes.create,
            "UPDATE": writes.update,
            "PATCH": writes.patch,
            "DELETE": writes.delete,
        }
        self._runner: web.AppRunner | None = None
        self._site: GuardedSite | None = None
        self._listener: Listener | None = None

    def admission(self, tenant: str) -> Admission:
        """The limits (and what they count right now) of one tenant."""
        return self._admission[tenant]

    # -- listening ------------------------------------------------------------------------------------

    async def listen(self, host: str, port: int, ssl_context: ssl.SSLContext | None) -> tuple[str, int]:
        """Start accepting connections; returns the bound (host, port). With HTTP/2 on (the
        default), ``ssl_context`` is set to offer ``h2`` and ``http/1.1`` by ALPN."""
        self._runner = web.AppRunner(
            self.app(),
            handler_cancellation=True,
            access_log=None,
            keepalive_timeout=self.settings.connections.idle_timeout,
        )
        await self._runner.setup()
        assert self._runner.server is not None
        self.connections.attach(self._runner.server)
        http2 = self.settings.http2
        if http2.enabled:
            if ssl_context is not None:
                ssl_context.set_alpn_protocols(["h2", "http/1.1"])
            self._listener = Listener(
                server=self._runner.server,
                guard=self.connections,
                settings=http2,
                idle_timeout=self.settings.connections.idle_timeout,
                tls=ssl_context is not None,
                counted=self.metrics.connection,
            )
        self._site = GuardedSite(
            self._runner,
            host,
            port,
            ssl_context=ssl_context,
            handshake_timeout=self.settings.connections.header_timeout,
            protocol=self._listener,
        )
        await self._site.start()
        bound: tuple[str, int] = self._runner.addresses[0][:2]
        return bound

    async def stop_accepting(self) -> None:
        """Close the listener; open connections go on."""
        if self._site is not None:
            with contextlib.suppress(RuntimeError):
                await self._site.stop()
            self._site = None

    async def close(self) -> None:
        """End the parked watches, let requests in flight finish, then close every connection."""
        await self.stop_accepting()
        await self._watches.close()
        if self._listener is not None:
            await self._listener.close(grace=5.0)
            self._listener = None
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    def app(self) -> web.Application:
        app = web.Application(
            middlewares=[self._errors_middleware],
            client_max_size=self.settings.max_body_bytes,
            handler_args={"max_field_size": 16384, "max_line_size": 16384},
        )
        get = app.router.add_get
        get("/healthz", self._healthz, allow_head=False)
        get("/livez", self._healthz, allow_head=False)
        get("/readyz", self._readyz, allow_head=False)
        get("/version", self._version, allow_head=False)
        get("/version/", self._version, allow_head=False)  # kube-apiserver answers both (kr8s asks this)
        get("/metrics", self._metrics, allow_head=False)
        app.router.add_route("*", "/api", self._core)
        app.router.add_route("*", "/api/{tail:.*}", self._core)
        get("/openapi/v2", self._documents.openapi_v2, allow_head=False)
        get("/openapi/v3", self._documents.openapi_v3, allow_head=False)
        app.router.add_route("*", "/openapi/v3/{tail:.*}", self._documents.openapi_v3_document)
        app.router.add_route("*", "/apis", self._apis)
        app.router.add_route("*", "/apis/{tail:.*}", self._apis)
        return app

    # -- errors, in one place -----------------------------------------------------------------------

    @web.middleware
    async def _errors_middleware(
        self, request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
    ) -> web.StreamResponse:
        self.connections.request_started(request)
        response = await self._answer(request, handler)
        # Written here, under the write timeout, rather than by aiohttp after the handler, which
        # would wait on a client that does not read for as long as the connection lives.
        await self._out.deliver(request, response, None)
        return response

    async def _answer(
        self, request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
    ) -> web.StreamResponse:
        try:
            return await handler(request)
        except StatusError as err:
            # A client's mistake (a GET before a create, a conflict to retry) is ordinary: info. A
            # server error (etcd unreachable, a timeout, a bug) is what an operator must see.
            log.log(
                logging.WARNING if err.code >= 500 else logging.INFO,
                "%s %s: %d %s: %s",
                request.method,
                request.path[:200],
                err.code,
                err.reason,
                err.message[:300],
                extra={"code": err.code, "reason": err.reason},
            )
            return status_response(err, close=isinstance(err, TooManyConnectionsError))
        except web.HTTPException as exc:
            if exc.status == 413:
                return status_response(
                    RequestEntityTooLargeError(
                        f"the request body is larger than {self.settings.max_body_bytes} bytes"
                    )
                )
            if exc.status == 404:
                return status_response(NotFoundError("the server could not find the requested resource"))
            if exc.status == 405:
                return status_response(MethodNotAllowedError(f"method {request.method} is not allowed here"))
            if exc.status < 400:
                raise
            return status_response(BadRequestError(exc.reason or "bad request"))
        except (asyncio.CancelledError, ConnectionResetError):
            raise
        except Exception:
            log.exception("%s %s: internal error", request.method, request.path)
            return status_response(InternalError("an internal error occurred; see the server log"))

    # -- who is calling -----------------------------------------------------------------------------

    def _caller(self, request: web.Request) -> Tenant | None:
        """The authenticated tenant (401 without valid credentials; 429 over its request rate), or
        None when auth is off."""
        if self.authenticator is None:
            self.connections.authenticated(request, "", None)
            return None
        cn = None
        if request.transport is not None:
            cert = request.transport.get_extra_info("peercert")
            if cert:  # present only when the client CA verified it
                for rdn in cert.get("subject", ()):
                    for key, value in rdn:
                        if key == "commonName":
                            cn = value
        try:
            tenant = self.authenticator.authenticate(request.headers.get("Authorization"), cn)
        except StatusError:
            self.connections.anonymous(request)  # a 429 instead, over the address's rate
            raise
        admission = self._admission[tenant.name]
        self.connections.authenticated(request, tenant.name, admission.limits.max_connections)
        admission.check_rate()  # every authenticated request counts
        return tenant

    def _open_endpoint(self, request: web.Request) -> None:
        """An endpoint open without credentials (health, version): rate limited per address when
        tenants are configured; with authentication off every client is the developer's own."""
        if self.authenticator is not None:
            self.connections.anonymous(request)
        else:
            self.connections.authenticated(request, "", None)

    # -- health, version, metrics -------------------------------------------------------------------

    async def _healthz(self, request: web.Request) -> web.Response:
        self._open_endpoint(request)
        return web.Response(text="ok")

    async def _readyz(self, request: web.Request) -> web.Response:
        """Kubernetes-style: one line per check, 503 when any fails. Open to anyone, so it names no
        resource (which would tell strangers every tenant's API); the log does."""
        self._open_endpoint(request)
        waiting = sum(1 for r in self._resources.values() if not r.is_ready)
        loading = f"failed: {waiting} of {len(self._resources)} caches loading"
        checks = [
            ("etcd", "ok" if self.storage.etcd.healthy else "failed: unreachable or without quorum"),
            ("caches-synced", "ok" if not waiting else loading),
        ]
        failed = any(result != "ok" for _, result in checks)
        if not failed and "verbose" not in request.query:
            return web.Response(text="ok")
        lines = [f"[{'-' if result != 'ok' else '+'}]{name} {result}" for name, result in checks]
        lines.append("readyz check failed" if failed else "readyz check passed")
        return web.Response(
            text="\n".join(lines) + "\n",
            status=503 if failed else 200,
            headers={"Retry-After": "1"} if failed else None,
        )

    async def _version(self, request: web.Request) -> web.Response:
        self._open_endpoint(request)
        return self._documents.version()

    async def _metrics(self, request: web.Request) -> web.Response:
        self._caller(request)
        return web.Response(body=self.metrics.render(), headers={"Content-Type": METRICS_CONTENT_TYPE})

    # -- /apis -------------------------------------------------------------------------------------

    async def _apis(self, request: web.Request) -> web.StreamResponse:
        raw = request.rel_url.raw_path
        segments = [unquote(s) for s in raw.split("/")[2:]]
        if segments and segments[-1] == "" and len(segments) <= 3:
            segments.pop()  # a trailing slash on a discovery path
        tenant = self._caller(request)
        if len(segments) <= 2:
            if request.method != "GET":
                raise MethodNotAllowedError(f"method {request.method} is not allowed here")
            return self._documents.apis(tenant, segments)
        return await self._resource_request(request, segments, tenant)

    # -- /api: the core group's read-only namespaces ------------------------------------------------

    async def _core(self, request: web.Request) -> web.StreamResponse:
        segments = [unquote(s) for s in request.rel_url.raw_path.split("/")[2:]]
        if segments and segments[-1] == "" and len(segments) <= 2:
            segments.pop()  # a trailing slash on a discovery path
        tenant = self._caller(request)
        if len(segments) <= 1:
            if request.method != "GET":
                raise MethodNotAllowedError(f"method {request.method} is not allowed here")
            return self._documents.core(segments)
        version, resource, rest = segments[0], segments[1], segments[2:]
        if version != "v1" or resource != "namespaces" or len(rest) > 1 or rest == [""]:
            raise NotFoundError("the server could not find the requested resource")
        readable = [r for r in self._resources.values() if tenant is None or tenant.can_read(r.spec.group)]
        admission = self._admission[tenant.name] if tenant is not None else None
        return await self._namespaces.handle(
            request, rest[0] if rest else None, readable=readable, admission=admission
        )

    # -- /apis/{group}/{version}/...: the configured resources -------------------------------------

    async def _resource_request(
        self, request: web.Request, segments: list[str], tenant: Tenant | None
    ) -> web.StreamResponse:
        target = target_of(segments, self._resources)
        spec = target.resource.spec
        done = Observation(self.metrics, request, spec)
        target = dataclasses.replace(target, observation=done)
        try:
            done.verb = verb = verb_of(request, target)
            handler = self._handlers[verb]
            admission = None
            if tenant is not None:
                tenant.authorize(
                    verb=verb, group=spec.group, resource=spec.resource, namespace=target.namespace
                )
                admission = self._admission[tenant.name]
                target = dataclasses.replace(target, admission=admission)
            target.resource.check_ready()  # 503 while etcd cannot be reached, else 429 while loading
            if admission is None:
                response = await handler(request, target)
                await self._out.deliver(request, response, None)
            else:
                async with admission.watch() if verb == "WATCH" else admission.slot():
                    response = await handler(request, target)
                    await self._out.deliver(request, response, admission.bytes)
            done.finish(response.status)
            return response
        except StatusError as err:
            done.finish(err.code)
            raise
        except asyncio.CancelledError:
            done.finish(499)  # the client went away before an answer (nginx's "client closed")
            raise
        finally:
            done.finish(500)
