"""The HTTP face of watchcache: Kubernetes REST paths over the embedded API, with aiohttp.

Routing is done here by hand over the raw path, segment by segment, so that an encoded ``%2F`` or a
``..`` can never change which resource or key a request reaches. Every failure becomes a Kubernetes
``Status`` in :func:`status_response` (the one place), including aiohttp's own errors and bugs (500).
WATCH is a chunked response written from pre-serialized event lines, one write per batch of events.

Every response is written under a write timeout (a client that does not read is dropped), and the
bytes a tenant's responses hold while being written come out of the tenant's byte budget: a LIST or a
watch's initial state is written from the cache's shared bytes in bounded pieces, each taken from the
budget before it is built. Connections are timed and capped by :mod:`._connections`.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import logging
import random
import ssl
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote

import orjson
from aiohttp import web

from . import _discovery
from ._auth import Authenticator, Tenant
from ._connections import ConnectionGuard, ConnectionSettings, GuardedSite, TooManyConnectionsError
from ._errors import (
    BadRequestError,
    InternalError,
    MethodNotAllowedError,
    NotAcceptableError,
    NotFoundError,
    RequestEntityTooLargeError,
    StatusError,
    TooManyRequestsError,
    UnsupportedMediaTypeError,
)
from ._history import Change
from ._limits import Admission, ByteBudget, TenantLimits, json_depth
from ._metrics import CONTENT_TYPE as METRICS_CONTENT_TYPE
from ._metrics import Metrics
from ._patch import PATCH_TYPES
from ._resource import Page, Resource, ResourceSpec, Watch
from ._storage import Storage
from ._store import Entry
from ._watchers import Item

__all__ = ["APIServer", "ServerSettings", "status_response"]

log = logging.getLogger(__name__)

JSON = "application/json"
_DEFAULT_LIMITS = TenantLimits()
_TRUE = {"true", "1"}
_FALSE = {"false", "0", ""}


@dataclass(frozen=True, kw_only=True)
class ServerSettings:
    """HTTP-level limits and timeouts."""

    max_body_bytes: int = 3 * 1024 * 1024
    """Largest request body accepted; larger ones get 413 RequestEntityTooLarge."""
    min_request_timeout: float = 1800.0
    """A watch without timeoutSeconds ends after a random time in [this, twice this] (kube-apiserver's
    ``--min-request-timeout``), which spreads re-watches out."""
    write_timeout: float = 60.0
    """Seconds any response (a watch, a LIST, an object) may stay blocked on a client that does not
    read before the connection is dropped."""
    connections: ConnectionSettings = dataclasses.field(default_factory=ConnectionSettings)
    """Header and idle timeouts, and the caps on connections without credentials."""


def status_response(err: StatusError) -> web.Response:
    """The HTTP response for an error: its Kubernetes ``Status``, code and ``Retry-After``."""
    headers = {}
    if err.retry_after is not None:
        headers["Retry-After"] = str(err.retry_after)
    response = web.Response(
        body=orjson.dumps(err.status()), status=err.code, content_type=JSON, headers=headers
    )
    if isinstance(err, TooManyConnectionsError):
        response.force_close()  # what the client was refused is a connection: close this one
    return response


# The fast path of watch fan-out: while a client keeps up, the dispatcher writes each change's
# chunk-framed line — encoded and framed once per change, shared by every watcher — straight to
# the socket, with no task switch per watcher. Past this much unsent data the watcher's buffer
# takes over, drained by its handler with backpressure and the tenant's byte budget; so a client
# that stops reading holds at most this much (plus one batch) before its handler waits.
_DIRECT_WRITE_HIGH_WATER = 64 * 1024
# LIST bodies and watch batches larger than this are written in pieces of about this size, each
# built only once the tenant's budget has room for it.
_PIECE = 256 * 1024


def _chunk(line: bytes) -> bytes:
    return b"%x\r\n%b\r\n" % (len(line), line)


def _direct_writer(watch: Watch, transport: Any, version: str) -> Callable[[list[Item]], bool]:
    # ``transport`` is asyncio's or uvloop's (which does not subclass asyncio.WriteTransport).
    key = ("http-chunk", version)

    def framed(item: Item) -> bytes:
        if type(item) is Change:
            memo = item.memo
            data = memo.get(key)
            if data is None:
                data = memo[key] = _chunk(watch.wire(item))
            return data
        return _chunk(watch.wire(item))

    def write(items: list[Item]) -> bool:
        if transport.is_closing() or transport.get_write_buffer_size() > _DIRECT_WRITE_HIGH_WATER:
            return False
        try:
            if len(items) == 1:
                transport.write(framed(items[0]))
            else:
                transport.write(b"".join([framed(item) for item in items]))
        except (OSError, RuntimeError):
            # This runs inside the cache's dispatch: one client's broken socket must not reach
            # it. The items go to the buffer instead, and the handler notices the connection.
            return False
        return True

    return write


def _drop(request: web.Request) -> None:
    """Close a streaming response's connection at once (no clean end is possible any more)."""
    if request.transport is not None:
        request.transport.abort()


def _json_response(obj: object, status: int = 200) -> web.Response:
    return web.Response(body=orjson.dumps(obj), status=status, content_type=JSON)


def _flag(query: Any, name: str) -> bool | None:
    value = query.get(name)
    if value is None:
        return None
    if value.lower() in _TRUE:
        return True
    if value.lower() in _FALSE:
        return False
    raise BadRequestError(f"invalid {name}: {value[:64]!r}: want true or false")


def _int(query: Any, name: str) -> int | None:
    value = query.get(name)
    if value is None or value == "":
        return None
    if not (value.isascii() and value.isdigit() and len(value) <= 18):
        raise BadRequestError(f"invalid {name}: {value[:64]!r}: want a non-negative integer")
    return int(value)


class _Observation:
    """Counts one request in the metrics and logs it, once: when its answer is decided — for a
    WATCH, when the stream starts (its duration is the set-up time)."""

    __slots__ = ("_request", "_server", "_spec", "_started", "done", "verb")

    def __init__(self, server: APIServer, request: web.Request, spec: ResourceSpec) -> None:
        self._server = server
        self._request = request
        self._spec = spec
        self._started = time.perf_counter()
        self.verb = "unknown"
        self.done = False

    def finish(self, code: int) -> None:
        if self.done:
            return
        self.done = True
        elapsed = time.perf_counter() - self._started
        spec = self._spec
        self._server.metrics.observe(
            verb=self.verb, group=spec.group, resource=spec.resource, code=code, seconds=elapsed
        )
        log.debug(
            "request",
            extra={
                "verb": self.verb,
                "path": self._request.path,
                "code": code,
                "ms": round(elapsed * 1000, 2),
            },
        )


@dataclass(frozen=True, slots=True)
class _Target:
    """A resource path: which resource, through which version, which namespace and object."""

    resource: Resource
    version: str
    namespace: str | None
    name: str | None
    admission: Admission | None = None
    """The calling tenant's limits (None with authentication off)."""
    observation: _Observation | None = None
    """Where the request's outcome is counted."""


class APIServer:
    """The aiohttp application serving every configured resource."""

    def __init__(
        self,
        *,
        storage: Storage,
        resources: Sequence[ResourceSpec],
        settings: ServerSettings | None = None,
        authenticator: Authenticator | None = None,
    ) -> None:
        self.storage = storage
        #: None: no tenants are configured and authentication is off.
        self.authenticator = authenticator
        self.settings = settings or ServerSettings()
        self.metrics = Metrics(storage)
        self.specs = tuple(resources)
        self._resources: dict[tuple[str, str], Resource] = {
            (spec.group, spec.resource): storage.resource(spec) for spec in self.specs
        }
        self._discovery_cache: dict[str, tuple[bytes, str]] = {}
        self._admission: dict[str, Admission] = {}
        if authenticator is not None:
            for tenant in authenticator.tenants.values():
                writable = [r for r in self._resources.values() if r.spec.group in tenant.groups]
                limits = authenticator.limits[tenant.name]
                self._admission[tenant.name] = Admission(tenant.name, limits, writable)
        self.connections = ConnectionGuard(self.settings.connections)
        self._runner: web.AppRunner | None = None
        self._site: GuardedSite | None = None

    def admission(self, tenant: str) -> Admission:
        """The limits (and what they count right now) of one tenant."""
        return self._admission[tenant]

    # -- listening ------------------------------------------------------------------------------------

    async def listen(self, host: str, port: int, ssl_context: ssl.SSLContext | None) -> tuple[str, int]:
        """Start accepting connections; returns the bound (host, port)."""
        self._runner = web.AppRunner(
            self.app(),
            handler_cancellation=True,
            access_log=None,
            keepalive_timeout=self.settings.connections.idle_timeout,
        )
        await self._runner.setup()
        assert self._runner.server is not None
        self.connections.attach(self._runner.server)
        self._site = GuardedSite(
            self._runner,
            host,
            port,
            ssl_context=ssl_context,
            handshake_timeout=self.settings.connections.header_timeout,
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
        """Let requests in flight finish, then close every connection."""
        await self.stop_accepting()
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
        get("/metrics", self._metrics, allow_head=False)
        get("/api", self._api, allow_head=False)
        get("/openapi/v2", self._openapi_v2, allow_head=False)
        get("/openapi/v3", self._openapi_v3, allow_head=False)
        app.router.add_route("*", "/openapi/v3/{tail:.*}", self._openapi_v3_document)
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
        await self._deliver(request, response, None)
        return response

    async def _answer(
        self, request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
    ) -> web.StreamResponse:
        try:
            return await handler(request)
        except StatusError as err:
            log.warning(
                "%s %s: %d %s: %s",
                request.method,
                request.path[:200],
                err.code,
                err.reason,
                err.message[:300],
                extra={"code": err.code, "reason": err.reason},
            )
            return status_response(err)
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

    def _visible(self, tenant: Tenant | None) -> tuple[str, tuple[ResourceSpec, ...]]:
        """(cache key, specs) of what ``tenant`` may see in discovery."""
        if tenant is None:
            return "", self.specs
        return tenant.name, tuple(s for s in self.specs if tenant.can_read(s.group))

    # -- health, discovery, metrics ----------------------------------------------------------------

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

    async def _metrics(self, request: web.Request) -> web.Response:
        self._caller(request)
        return web.Response(body=self.metrics.render(), headers={"Content-Type": METRICS_CONTENT_TYPE})

    def _cached(
        self, key: str, build: Callable[[], object | None], *, request: web.Request | None = None
    ) -> web.Response:
        """A discovery or OpenAPI document, encoded once. A request naming the document's hash (as
        the OpenAPI v3 index links do) may cache it for good, as with kube-apiserver."""
        cached = self._discovery_cache.get(key)
        if cached is None:
            doc = build()
            if doc is None:
                raise NotFoundError("the server could not find the requested resource")
            body = _discovery.encode(doc)
            cached = self._discovery_cache[key] = (body, _discovery.document_hash(doc))
        body, digest = cached
        response = web.Response(body=body, content_type=JSON)
        if request is not None and request.query.get("hash") == digest:
            response.headers["ETag"] = f'"{digest}"'
            response.headers["Cache-Control"] = "public, immutable"
            response.headers["Expires"] = "Thu, 31 Dec 2099 23:59:59 GMT"
        return response

    async def _version(self, request: web.Request) -> web.Response:
        self._open_endpoint(request)
        return self._cached("version", _discovery.version_info)

    async def _api(self, request: web.Request) -> web.Response:
        self._caller(request)
        return self._cached("api", _discovery.api_versions)

    async def _openapi_v2(self, request: web.Request) -> web.Response:
        # kubectl asks for protobuf only on fallbacks (the v3 documents serve it); like
        # kube-apiserver for a format it cannot produce, answer 406.
        if not _discovery.accepts_json(request.headers.get("Accept")):
            raise NotAcceptableError("only application/json is served for /openapi/v2")
        who, specs = self._visible(self._caller(request))
        return self._cached(f"{who}:openapi/v2", lambda: _discovery.openapi_v2(specs))

    async def _openapi_v3(self, request: web.Request) -> web.Response:
        who, specs = self._visible(self._caller(request))
        return self._cached(f"{who}:openapi/v3", lambda: _discovery.openapi_v3_index(specs))

    async def _openapi_v3_document(self, request: web.Request) -> web.Response:
        if request.method != "GET":
            raise MethodNotAllowedError(f"method {request.method} is not allowed here")
        parts = request.match_info["tail"].split("/")
        if len(parts) != 3 or parts[0] != "apis":
            raise NotFoundError("the server could not find the requested resource")
        group, version = parts[1], parts[2]
        who, specs = self._visible(self._caller(request))
        return self._cached(
            f"{who}:openapi/v3/{group}/{version}",
            lambda: _discovery.openapi_v3_document(group, version, specs),
            request=request,
        )

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
            who, specs = self._visible(tenant)
            if not segments:
                return self._cached(f"{who}:apis", lambda: _discovery.api_group_list(specs))
            if len(segments) == 1:
                group = segments[0]
                return self._cached(f"{who}:apis/{group}", lambda: _discovery.api_group(group, specs))
            group, version = segments
            return self._cached(
                f"{who}:apis/{group}/{version}",
                lambda: _discovery.api_resource_list(group, version, specs),
            )
        return await self._resource_request(request, segments, tenant)

    def _target(self, segments: list[str]) -> _Target:
        group, version, rest = segments[0], segments[1], segments[2:]
        namespace = None
        if len(rest) >= 3 and rest[0] == "namespaces":
            namespace, rest = rest[1], rest[2:]
            if namespace == "":
                raise NotFoundError("the server could not find the requested resource")
        if not 1 <= len(rest) <= 2 or rest[0] == "":
            raise NotFoundError("the server could not find the requested resource")
        resource = self._resources.get((group, rest[0]))
        if resource is None or version not in resource.spec.versions:
            raise NotFoundError("the server could not find the requested resource")
        if namespace is not None and not resource.spec.namespaced:
            raise NotFoundError("the server could not find the requested resource")
        name = rest[1] if len(rest) == 2 else None
        if name is not None and resource.spec.namespaced and namespace is None:
            raise NotFoundError("the server could not find the requested resource")
        return _Target(resource, version, namespace, name)

    async def _resource_request(
        self, request: web.Request, segments: list[str], tenant: Tenant | None
    ) -> web.StreamResponse:
        target = self._target(segments)
        spec = target.resource.spec
        done = _Observation(self, request, spec)
        target = dataclasses.replace(target, observation=done)
        try:
            done.verb, handler = self._route(request, target)
            verb = done.verb
            admission = None
            if tenant is not None:
                tenant.authorize(
                    verb=verb, group=spec.group, resource=spec.resource, namespace=target.namespace
                )
                admission = self._admission[tenant.name]
                target = dataclasses.replace(target, admission=admission)
            if not target.resource.is_ready:
                raise TooManyRequestsError(
                    f"the cache of {spec.qualified} is still loading; retry shortly", retry_after=1
                )
            if admission is None:
                response = await handler(request, target)
                await self._deliver(request, response, None)
            else:
                async with admission.watch() if verb == "WATCH" else admission.slot():
                    response = await handler(request, target)
                    await self._deliver(request, response, admission.bytes)
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

    def _route(
        self, request: web.Request, target: _Target
    ) -> tuple[str, Callable[[web.Request, _Target], Awaitable[web.StreamResponse]]]:
        method = request.method
        if target.name is None:
            if method == "GET":
                if _flag(request.query, "watch"):
                    return "WATCH", self._watch
                return "LIST", self._list
            if method == "POST":
                if target.resource.spec.namespaced and target.namespace is None:
                    raise MethodNotAllowedError(
                        f"create {target.resource.spec.qualified} in a namespace: "
                        f"POST /apis/{target.resource.spec.group}/{target.version}/namespaces/NS/"
                        f"{target.resource.spec.resource}"
                    )
                return "CREATE", self._create
        else:
            if method == "GET":
                if _flag(request.query, "watch"):
                    return "WATCH", self._watch
                return "GET", self._get
            if method == "PUT":
                return "UPDATE", self._update
            if method == "PATCH":
                return "PATCH", self._patch
            if method == "DELETE":
                return "DELETE", self._delete
        raise MethodNotAllowedError(f"method {method} is not allowed on {request.path}")

    # -- writing responses -------------------------------------------------------------------------------

    async def _deliver(
        self, request: web.Request, response: web.StreamResponse, budget: ByteBudget | None
    ) -> None:
        """Write a whole response now, under the write timeout, its body held in ``budget``; a
        streaming response has been written by its handler already."""
        if response.prepared:
            return
        body = response.body if isinstance(response, web.Response) else None
        size = len(body) if isinstance(body, bytes) else 0
        async with self._held(budget, size):
            await self._write_or_drop(request, self._send(request, response))

    @staticmethod
    async def _send(request: web.Request, response: web.StreamResponse) -> None:
        await response.prepare(request)
        await response.write_eof()

    @contextlib.asynccontextmanager
    async def _held(self, budget: ByteBudget | None, size: int) -> AsyncIterator[None]:
        if budget is None or not size:
            yield
            return
        async with budget.hold(size, self.settings.write_timeout):
            yield

    async def _write_or_drop(self, request: web.Request, write: Awaitable[object]) -> bool:
        """Await a response write; a client that has not read for ``write_timeout`` seconds has its
        connection dropped (False). A timed-out write cannot be resumed (aiohttp's drain waiter is
        gone), so the connection cannot be reused either."""
        try:
            async with asyncio.timeout(self.settings.write_timeout):
                await write
        except TimeoutError:
            log.info("dropping a connection whose client stopped reading: %s", request.path[:200])
            _drop(request)
            return False
        return True

    # -- reads -------------------------------------------------------------------------------------

    async def _get(self, request: web.Request, target: _Target) -> web.Response:
        assert target.name is not None
        raw = await target.resource.get_raw(
            target.name,
            namespace=target.namespace,
            resource_version=request.query.get("resourceVersion"),
            version=target.version,
        )
        return web.Response(body=raw, content_type=JSON)

    async def _list(self, request: web.Request, target: _Target) -> web.StreamResponse:
        q = request.query
        spec = target.resource.spec
        page = await target.resource.list_page(
            namespace=target.namespace,
            label_selector=q.get("labelSelector"),
            field_selector=q.get("fieldSelector"),
            resource_version=q.get("resourceVersion"),
            resource_version_match=q.get("resourceVersionMatch"),
            limit=_int(q, "limit"),
            continue_token=q.get("continue"),
            version=target.version,
        )
        meta: dict[str, Any] = {"resourceVersion": str(page.revision)}
        if page.continue_token:
            meta["continue"] = page.continue_token
        if page.remaining_item_count is not None:
            meta["remainingItemCount"] = page.remaining_item_count
        head = orjson.dumps(
            {"kind": f"{spec.kind}List", "apiVersion": spec.api_version(target.version), "metadata": meta}
        )
        prefix = head[:-1] + b',"items":['
        pieces = _pieces(page)
        first = next(pieces, None)
        if first is None or len(first) == len(page.entries):
            # A small list: one body (the caller writes it under the write timeout and budget).
            return web.Response(
                body=prefix + b",".join(map(page.item, page.entries)) + b"]}", content_type=JSON
            )
        # A large one: written piece by piece from the cache's shared bytes, each piece built only
        # once the tenant's budget has room for it, so no second copy of the answer ever exists.
        budget = target.admission.bytes if target.admission is not None else None
        response = web.StreamResponse(headers={"Content-Type": JSON})
        response.enable_chunked_encoding()
        await self._write_or_drop(request, response.prepare(request))
        piece: list[Entry] | None = first
        separator = prefix
        while piece is not None:
            async with self._held(budget, sum(len(entry.json) + 1 for entry in piece)):
                data = separator + b",".join(map(page.item, piece))
                if not await self._write_or_drop(request, response.write(data)):
                    return response
            separator = b","
            piece = next(pieces, None)
        await self._write_or_drop(request, response.write_eof(b"]}"))
        return response

    async def _watch(self, request: web.Request, target: _Target) -> web.StreamResponse:
        q = request.query
        field_selector = q.get("fieldSelector")
        if target.name is not None:  # the legacy form: watch one object by its path
            by_name = f"metadata.name={target.name}"
            field_selector = f"{field_selector},{by_name}" if field_selector else by_name
        timeout = _int(q, "timeoutSeconds")
        if timeout is None or timeout == 0:
            low = self.settings.min_request_timeout
            timeout_s = low * (1 + random.random())
        else:
            timeout_s = float(timeout)
        watch = target.resource.watch(
            namespace=target.namespace,
            label_selector=q.get("labelSelector"),
            field_selector=field_selector,
            resource_version=q.get("resourceVersion"),
            resource_version_match=q.get("resourceVersionMatch"),
            send_initial_events=_flag(q, "sendInitialEvents"),
            allow_bookmarks=bool(_flag(q, "allowWatchBookmarks")),
            version=target.version,
        )
        await watch.open()  # errors (400, 504) are still plain responses
        budget = target.admission.bytes if target.admission is not None else None
        response = web.StreamResponse(status=200, headers={"Content-Type": JSON})
        response.enable_chunked_encoding()
        try:
            # Sends the headers now: direct writes may follow.
            if not await self._write_or_drop(request, response.prepare(request)):
                return response
            if target.observation is not None:
                target.observation.finish(200)
            if request.transport is not None:
                watch.set_sink(_direct_writer(watch, request.transport, target.version))
            # timeoutSeconds bounds the wait for events only: cancelling a blocked write would leave
            # aiohttp's drain waiter cancelled, and the final write_eof() could then never finish.
            deadline = asyncio.get_running_loop().time() + timeout_s
            while True:
                try:
                    async with asyncio.timeout_at(deadline):
                        batch = await watch.next_items(_PIECE)
                except TimeoutError:
                    break  # timeoutSeconds elapsed: end the stream cleanly
                if not batch:
                    break
                async with self._held(budget, watch.size(batch)):
                    if not await self._write_or_drop(request, response.write(watch.chunk(batch))):
                        return response
        except (ConnectionResetError, TooManyRequestsError):
            # A reset client; or one whose tenant's budget stayed full for the whole write timeout.
            _drop(request)
            return response
        except Exception:
            # The headers are out: a Status can no longer be sent, so end the stream.
            log.exception("%s: watch stream failed", request.path)
            _drop(request)
            return response
        finally:
            watch.close()
        await self._write_or_drop(request, response.write_eof())
        return response

    # -- writes ------------------------------------------------------------------------------------

    async def _body(
        self, request: web.Request, target: _Target, allowed: tuple[str, ...]
    ) -> tuple[dict[str, Any] | list[Any], str]:
        content_type = request.content_type or JSON
        if request.headers.get("Content-Type") is None:
            content_type = allowed[0]
        if content_type not in allowed:
            raise UnsupportedMediaTypeError(
                f"the body of a {request.method} request must be one of: {', '.join(allowed)}; "
                f"got {content_type[:100]!r}"
            )
        length = request.content_length
        if length is not None and length > self.settings.max_body_bytes:
            raise RequestEntityTooLargeError(
                f"the request body is larger than {self.settings.max_body_bytes} bytes"
            )
        raw = await request.read()
        try:
            body = orjson.loads(raw)
        except orjson.JSONDecodeError as err:
            raise BadRequestError(f"the request body is not valid JSON: {err}") from None
        if not isinstance(body, dict | list):
            raise BadRequestError("the request body must be a JSON object")
        if target.admission is not None:
            target.admission.check_body(len(raw), body)
        elif json_depth(body, _DEFAULT_LIMITS.max_json_depth) > _DEFAULT_LIMITS.max_json_depth:
            raise BadRequestError(
                f"the request body is nested deeper than {_DEFAULT_LIMITS.max_json_depth} levels"
            )
        await self._check_field_validation(request, raw)
        return body, content_type

    @staticmethod
    async def _check_field_validation(request: web.Request, raw: bytes) -> None:
        """``fieldValidation``: the schemas preserve unknown fields, so only duplicate fields can be
        rejected (Strict) or warned about (Warn)."""
        mode = request.query.get("fieldValidation", "")
        if mode not in ("", "Ignore", "Warn", "Strict"):
            raise BadRequestError(f"fieldValidation must be one of Ignore, Warn, Strict; got {mode[:64]!r}")
        if mode != "Strict":
            return

        def no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
            seen: dict[str, Any] = {}
            for key, value in pairs:
                if key in seen:
                    raise BadRequestError(f'strict decoding error: duplicate field "{key[:100]}"')
                seen[key] = value
            return seen

        def check() -> None:
            json.loads(raw, object_pairs_hook=no_duplicates)

        if len(raw) < _PIECE:
            check()
        else:
            # A pure-Python decode of a large body: off the event loop, so others are not kept waiting.
            await asyncio.to_thread(check)

    @staticmethod
    def _dry_run(request: web.Request, options: dict[str, Any] | None = None) -> bool:
        """``dryRun`` as Kubernetes takes it: the query parameter on any write, or ``dryRun`` in a
        DELETE's ``DeleteOptions`` body; the one value is ``All`` (400 for any other)."""
        values: list[Any] = list(request.query.getall("dryRun", ()))
        if options is not None and "dryRun" in options:
            body_values = options["dryRun"]
            if body_values is not None and not isinstance(body_values, list):
                raise BadRequestError("dryRun must be a list of strings")
            values += body_values or []
        values = [v for v in values if v != ""]
        for value in values:
            if value != "All":
                raise BadRequestError(f'invalid dryRun value {str(value)[:64]!r}: the only one is "All"')
        return bool(values)

    async def _create(self, request: web.Request, target: _Target) -> web.Response:
        body, _ = await self._body(request, target, (JSON,))
        if not isinstance(body, dict):
            raise BadRequestError("the request body must be a JSON object")
        obj = await target.resource.create(
            body,
            namespace=target.namespace,
            version=target.version,
            quota=target.admission,
            dry_run=self._dry_run(request),
        )
        return _json_response(obj, status=201)

    async def _update(self, request: web.Request, target: _Target) -> web.Response:
        body, _ = await self._body(request, target, (JSON,))
        if not isinstance(body, dict):
            raise BadRequestError("the request body must be a JSON object")
        obj = await target.resource.update(
            body,
            namespace=target.namespace,
            name=target.name,
            version=target.version,
            quota=target.admission,
            dry_run=self._dry_run(request),
        )
        return _json_response(obj)

    async def _patch(self, request: web.Request, target: _Target) -> web.Response:
        assert target.name is not None
        content_type = request.content_type
        if content_type not in PATCH_TYPES:
            raise UnsupportedMediaTypeError(
                f"the patch type {content_type[:100]!r} is not supported; use {' or '.join(PATCH_TYPES)}"
            )
        patch, _ = await self._body(request, target, PATCH_TYPES)
        obj = await target.resource.patch(
            target.name,
            patch,
            patch_type=content_type,
            namespace=target.namespace,
            version=target.version,
            quota=target.admission,
            dry_run=self._dry_run(request),
        )
        return _json_response(obj)

    async def _delete(self, request: web.Request, target: _Target) -> web.Response:
        assert target.name is not None
        rv: str | None = None
        uid: str | None = None
        options: dict[str, Any] | None = None
        if request.can_read_body:
            body, _ = await self._body(request, target, (JSON,))
            if not isinstance(body, dict):
                raise BadRequestError("a delete body must be a JSON object (DeleteOptions)")
            options = body
            pre = body.get("preconditions") or {}
            if not isinstance(pre, dict):
                raise BadRequestError("preconditions must be a JSON object")
            rv, uid = pre.get("resourceVersion"), pre.get("uid")
            if rv is not None and not isinstance(rv, str):
                raise BadRequestError("preconditions.resourceVersion must be a string")
            if uid is not None and not isinstance(uid, str):
                raise BadRequestError("preconditions.uid must be a string")
        obj = await target.resource.delete(
            target.name,
            namespace=target.namespace,
            resource_version=rv,
            uid=uid,
            version=target.version,
            dry_run=self._dry_run(request, options),
        )
        return _json_response(obj)


def _pieces(page: Page) -> Iterator[list[Entry]]:
    """A page's entries in runs of about ``_PIECE`` bytes."""
    piece: list[Entry] = []
    size = 0
    for entry in page.entries:
        piece.append(entry)
        size += len(entry.json) + 1
        if size >= _PIECE:
            yield piece
            piece, size = [], 0
    if piece:
        yield piece
