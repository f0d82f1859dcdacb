"""Discovery and OpenAPI documents, encoded once per tenant view and served from memory.

A tenant sees only the groups it may read; each distinct view of each document is built and encoded
once. A request naming a document's hash (as the OpenAPI v3 index links do) may cache it for good, as
with kube-apiserver.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from aiohttp import web

from ..api.spec import ResourceSpec
from ..errors import MethodNotAllowedError, NotAcceptableError, NotFoundError
from ..tenancy.auth import Tenant
from . import discovery, openapi
from .openapi_proto import openapi_v2_protobuf
from .wire import JSON

__all__ = ["Documents"]

Caller = Callable[[web.Request], Tenant | None]
"""Who is calling (401 without valid credentials), or None with authentication off."""


def _not_found() -> NotFoundError:
    return NotFoundError("the server could not find the requested resource")


class Documents:
    """The handlers of ``/version``, ``/api[/v1]``, ``/apis[/group[/version]]`` and ``/openapi/...``."""

    def __init__(self, specs: Sequence[ResourceSpec], caller: Caller) -> None:
        self.specs = tuple(specs)
        self._caller = caller
        self._cache: dict[str, tuple[bytes, str]] = {}

    def _visible(self, tenant: Tenant | None) -> tuple[str, tuple[ResourceSpec, ...]]:
        """(cache key, specs) of what ``tenant`` may see."""
        if tenant is None:
            return "", self.specs
        return tenant.name, tuple(s for s in self.specs if tenant.can_read(s.group))

    def _cached(
        self,
        key: str,
        build: Callable[[], object | None],
        *,
        request: web.Request | None = None,
        encode: Callable[[Any], bytes] = discovery.encode,
        content_type: str = JSON,
    ) -> web.Response:
        cached = self._cache.get(key)
        if cached is None:
            doc = build()
            if doc is None:
                raise _not_found()
            body = encode(doc)
            cached = self._cache[key] = (body, discovery.document_hash(doc))
        body, digest = cached
        response = web.Response(body=body, content_type=content_type)
        if request is not None and request.query.get("hash") == digest:
            response.headers["ETag"] = f'"{digest}"'
            response.headers["Cache-Control"] = "public, immutable"
            response.headers["Expires"] = "Thu, 31 Dec 2099 23:59:59 GMT"
        return response

    def version(self) -> web.Response:
        return self._cached("version", discovery.version_info)

    def core(self, segments: list[str]) -> web.Response:
        """``/api`` and ``/api/v1`` (``segments``: what follows ``api``): the same for every caller."""
        if not segments:
            return self._cached("api", discovery.api_versions)
        if segments == ["v1"]:
            return self._cached("api/v1", discovery.core_resource_list)
        raise _not_found()

    def apis(self, tenant: Tenant | None, segments: list[str]) -> web.Response:
        """``/apis``, ``/apis/{group}``, ``/apis/{group}/{version}`` (``segments``: what follows)."""
        who, specs = self._visible(tenant)
        if not segments:
            return self._cached(f"{who}:apis", lambda: discovery.api_group_list(specs))
        if len(segments) == 1:
            group = segments[0]
            return self._cached(f"{who}:apis/{group}", lambda: discovery.api_group(group, specs))
        group, version = segments
        return self._cached(
            f"{who}:apis/{group}/{version}", lambda: discovery.api_resource_list(group, version, specs)
        )

    async def openapi_v2(self, request: web.Request) -> web.Response:
        # JSON or, as client-go asks for it, gnostic's protobuf (what kubectl's client-side
        # validation and `explain --output=plaintext-openapiv2` read); 406 for anything else.
        answer = discovery.openapi_v2_format(request.headers.get("Accept"))
        if answer is None:
            raise NotAcceptableError(
                f"/openapi/v2 is served as application/json or {discovery.OPENAPI_V2_PROTOBUF_TYPE}"
            )
        who, specs = self._visible(self._caller(request))
        response = (
            self._cached(f"{who}:openapi/v2", lambda: openapi.openapi_v2(specs))
            if answer == "json"
            else self._cached(
                f"{who}:openapi/v2.pb",
                lambda: openapi.openapi_v2(specs),
                encode=openapi_v2_protobuf,
                content_type=discovery.OPENAPI_V2_PROTOBUF_TYPE,
            )
        )
        response.headers["Vary"] = "Accept"
        return response

    async def openapi_v3(self, request: web.Request) -> web.Response:
        who, specs = self._visible(self._caller(request))
        return self._cached(f"{who}:openapi/v3", lambda: openapi.openapi_v3_index(specs))

    async def openapi_v3_document(self, request: web.Request) -> web.Response:
        if request.method != "GET":
            raise MethodNotAllowedError(f"method {request.method} is not allowed here")
        parts = request.match_info["tail"].split("/")
        if len(parts) != 3 or parts[0] != "apis":
            raise _not_found()
        group, version = parts[1], parts[2]
        who, specs = self._visible(self._caller(request))
        return self._cached(
            f"{who}:openapi/v3/{group}/{version}",
            lambda: openapi.openapi_v3_document(group, version, specs),
            request=request,
        )
