"""Writes over HTTP: bodies read and checked, then handed to the resource's writes.

A body must have an accepted content type, fit ``--max-request-body-bytes`` and the tenant's
``maxRequestBytes``, be JSON no deeper than ``maxJSONDepth``, and (with ``fieldValidation=Strict``)
have no duplicate field. ``dryRun`` is read from the query of every write and from a DELETE's
``DeleteOptions`` body, as Kubernetes reads it.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

import orjson
from aiohttp import web

from ..api.patch import PATCH_TYPES, json_depth
from ..errors import BadRequestError, RequestEntityTooLargeError, UnsupportedMediaTypeError
from ..tenancy.config import TenantLimits
from .read import PIECE
from .routes import Target
from .wire import JSON, json_response

__all__ = ["Writes"]

_DEFAULT_LIMITS = TenantLimits()


class Writes:
    """The create, update, patch and delete handlers."""

    def __init__(self, max_body_bytes: int) -> None:
        self._max_body_bytes = max_body_bytes

    async def _body(
        self, request: web.Request, target: Target, allowed: tuple[str, ...]
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
        if length is not None and length > self._max_body_bytes:
            raise RequestEntityTooLargeError(f"the request body is larger than {self._max_body_bytes} bytes")
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

        if len(raw) < PIECE:
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

    async def _object(self, request: web.Request, target: Target) -> dict[str, Any]:
        body, _ = await self._body(request, target, (JSON,))
        if not isinstance(body, dict):
            raise BadRequestError("the request body must be a JSON object")
        return body

    async def create(self, request: web.Request, target: Target) -> web.StreamResponse:
        obj = await target.resource.create(
            await self._object(request, target),
            namespace=target.namespace,
            version=target.version,
            quota=target.admission,
            dry_run=self._dry_run(request),
        )
        return json_response(obj, status=201)

    async def update(self, request: web.Request, target: Target) -> web.StreamResponse:
        obj = await target.resource.update(
            await self._object(request, target),
            namespace=target.namespace,
            name=target.name,
            version=target.version,
            quota=target.admission,
            dry_run=self._dry_run(request),
        )
        return json_response(obj)

    async def patch(self, request: web.Request, target: Target) -> web.StreamResponse:
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
        return json_response(obj)

    async def delete(self, request: web.Request, target: Target) -> web.StreamResponse:
        assert target.name is not None
        rv: str | None = None
        uid: str | None = None
        options: dict[str, Any] | None = None
        if request.can_read_body:
            body, _ = await self._body(request, target, (JSON,))
            if not isinstance(body, dict):
                raise BadRequestError("a delete body must be a JSON object (DeleteOptions)")
            options = body
            pre = body.get("preconditions")
            if pre is None:
                pre = {}
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
        return json_response(obj)
