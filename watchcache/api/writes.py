"""Writes of one resource, straight to etcd in one transaction each, as kube-apiserver makes them.

create: a put if the key does not exist (409 AlreadyExists otherwise); update and patch: a
compare-and-swap on the revision the new object was computed from, retried on conflict
(GuaranteedUpdate), with ``metadata.resourceVersion`` as an optional precondition; delete: a
compare-and-delete, with optional resourceVersion and uid preconditions. Every write takes
``dry_run``, and a ``quota`` that carries a writer's limits (:class:`Quota`).
"""

from __future__ import annotations

import datetime
import secrets
import uuid
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager, nullcontext, suppress
from typing import Any, Protocol

import orjson

from ..errors import (
    AlreadyExistsError,
    BadRequestError,
    ConflictError,
    FieldError,
    InternalError,
    InvalidError,
    NotFoundError,
    RequestEntityTooLargeError,
    StatusError,
)
from ..etcd.types import KeyValue
from ..keys import name_errors, namespace_errors
from .context import Context
from .meta import generate_name_errors, metadata_errors
from .options import parse_revision
from .patch import PatchLimits, parse_patch
from .spec import DEFAULT_MAX_OBJECT_BYTES

__all__ = ["Quota", "Writes"]

_DEFAULT_MAX_DEPTH = 64
_MAX_WRITE_ATTEMPTS = 16
# Kubernetes' generateName alphabet: no vowels (no words), no look-alikes; the prefix kept is at
# most 58 characters, so that a generated name fits in 63.
_NAME_ALPHABET = "bcdfghjklmnpqrstvwxz2456789"
_MAX_GENERATE_NAME = 58


class Quota(Protocol):
    """A writer's limits (the HTTP layer's per-tenant quotas): ``reserve`` raises when there is no
    room for a write, and is held until the cache has seen it; objects larger than
    ``max_object_bytes`` are refused (413) before anything is written."""

    @property
    def max_object_bytes(self) -> int: ...

    @property
    def max_json_depth(self) -> int: ...

    def reserve(self, *, objects: int, size: int) -> AbstractAsyncContextManager[None]: ...


def _now() -> str:
    return datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class Writes:
    """The writes of one resource (see the module docstring); :class:`~.resource.Resource` adds its
    reads and watches."""

    def __init__(self, ctx: Context) -> None:
        self._ctx = ctx
        self.spec = ctx.spec
        self.cache = ctx.cache
        self._etcd = ctx.etcd
        self._api_version = ctx.api_version

    # Every write takes ``dry_run``: as Kubernetes does it, the request is validated, admitted
    # (quotas included) and computed against etcd's current state, and the would-be result is
    # returned; nothing is written.

    def _served(self, obj: dict[str, Any], revision: int | None, api_version: str) -> dict[str, Any]:
        meta = obj.setdefault("metadata", {})
        if revision is None:
            meta.pop("resourceVersion", None)  # a dry-run create: nothing was stored
        else:
            meta["resourceVersion"] = str(revision)
        obj["apiVersion"] = api_version
        obj.setdefault("kind", self.spec.kind)
        return obj

    def _metadata(self, obj: object) -> dict[str, Any]:
        if not isinstance(obj, dict):
            raise BadRequestError("the object must be a JSON object")
        meta = obj.get("metadata", {})
        if meta is None:
            meta = {}
        if not isinstance(meta, dict):
            raise BadRequestError("metadata must be a JSON object")
        return dict(meta)

    def _identity(self, obj: object, api_version: str, name: str | None = None) -> dict[str, Any]:
        """A copy of ``obj``'s metadata, once its apiVersion, kind and (when the request names the
        object) name agree with the request: 400 otherwise, as kube-apiserver answers."""
        meta = self._metadata(obj)
        assert isinstance(obj, dict)
        body_version = obj.get("apiVersion")
        if body_version is not None and body_version != api_version:
            raise BadRequestError(
                f"the API version in the data ({str(body_version)[:100]}) does not match the expected "
                f"API version ({api_version})"
            )
        kind = obj.get("kind")
        if kind is not None and kind != self.spec.kind:
            raise BadRequestError(
                f"the kind in the data ({str(kind)[:100]}) does not match the expected kind "
                f"({self.spec.kind})"
            )
        if name is not None:
            body_name = meta.get("name")
            if body_name is not None and body_name != name:
                raise BadRequestError(
                    f"the name of the object ({str(body_name)[:100]}) does not match the name on the URL "
                    f"({name[:100]})"
                )
            meta["name"] = name
        return meta

    def _namespace_of(self, meta: dict[str, Any], namespace: str | None) -> str | None:
        body_ns = meta.get("namespace")
        if body_ns is not None and not isinstance(body_ns, str):
            raise BadRequestError("metadata.namespace must be a string")
        if not self.spec.namespaced:
            if namespace:
                raise BadRequestError(f"{self.spec.qualified} is not namespaced")
            meta.pop("namespace", None)
            return None
        if namespace and body_ns and body_ns != namespace:
            raise BadRequestError(
                "the namespace of the provided object does not match the namespace sent on the request"
            )
        ns = namespace or body_ns
        if not ns:
            raise BadRequestError(f"a namespace is required for {self.spec.qualified}")
        meta["namespace"] = ns
        return str(ns)

    def _stored(self, obj: dict[str, Any], api_version: str, meta: dict[str, Any]) -> dict[str, Any]:
        """``obj`` as written to etcd: ``apiVersion``, ``kind`` and ``metadata`` first, the rest in
        the body's order. The cache serves an object spliced from etcd's bytes (see
        :mod:`watchcache.cache.splice`), which needs only scalar members before ``metadata``."""
        stored = {"apiVersion": api_version, "kind": obj.get("kind", self.spec.kind), "metadata": meta}
        for field, value in obj.items():
            stored.setdefault(field, value)
        return stored

    def _encode(self, stored: dict[str, Any], name: str, quota: Quota | None) -> bytes:
        """The value written to etcd; 413 when larger than the writer may store."""
        try:
            value = orjson.dumps(stored)
        except (orjson.JSONEncodeError, TypeError) as err:
            raise BadRequestError(f"the object cannot be encoded as JSON: {err}") from None
        limit = quota.max_object_bytes if quota is not None else DEFAULT_MAX_OBJECT_BYTES
        if len(value) > limit:
            raise RequestEntityTooLargeError(
                f'{self.spec.kind} "{name[:100]}" would be {len(value)} bytes, more than the {limit} '
                "allowed; nothing was written"
            )
        return value

    async def create(
        self,
        obj: dict[str, Any],
        *,
        namespace: str | None = None,
        version: str | None = None,
        quota: Quota | None = None,
        dry_run: bool = False,
    ) -> dict[str, Any]:
        """Create ``obj`` (409 AlreadyExists if its name is taken); returns it as stored (a dry run:
        as it would be stored, without a resourceVersion)."""
        api_version = self._api_version(version)
        meta = self._identity(obj, api_version)
        errors = metadata_errors(meta)
        ns = self._namespace_of(meta, namespace)
        name = meta.get("name")
        generate = meta.get("generateName")
        found: list[FieldError] = []
        if not name and generate:
            # As kube-apiserver: the name is generated first, then both are checked.
            found = generate_name_errors(generate)
            name = generate[:_MAX_GENERATE_NAME] + "".join(secrets.choice(_NAME_ALPHABET) for _ in range(5))
        found += name_errors(name or "")
        if ns is not None:
            found += namespace_errors(ns)
        found += errors
        if found:
            raise InvalidError.of(found, kind=self.spec.kind, group=self.spec.group, name=name or "")
        assert isinstance(name, str)
        key = self._ctx.key(ns, name)
        meta.update(name=name, uid=str(uuid.uuid4()), creationTimestamp=_now())
        meta.pop("resourceVersion", None)
        stored = self._stored(obj, api_version, meta)
        value = self._encode(stored, name, quota)
        if dry_run:
            async with self._reserve(quota, objects=1, size=len(value)):
                _, existing = await self._etcd.get(key)
            if existing is not None:
                raise AlreadyExistsError.for_object(self.spec.qualified, name)
            return self._served(stored, None, api_version)
        async with self._reserve(quota, objects=1, size=len(value)):
            result = await self._etcd.create(key, value)
            if not result.succeeded:
                raise AlreadyExistsError.for_object(self.spec.qualified, name)
            await self._settle(quota, result.revision)
        return self._served(stored, result.revision, api_version)

    def _reserve(self, quota: Quota | None, *, objects: int, size: int) -> AbstractAsyncContextManager[None]:
        return quota.reserve(objects=objects, size=size) if quota is not None else nullcontext()

    async def _settle(self, quota: Quota | None, revision: int) -> None:
        """With a quota, hold the reservation until the cache counts the write."""
        if quota is not None:
            # The write is done either way; counting it late only delays the next quota check.
            with suppress(StatusError):
                await self.cache.wait_for(revision, self.cache.settings.wait_timeout)

    async def update(
        self,
        obj: dict[str, Any],
        *,
        namespace: str | None = None,
        name: str | None = None,
        version: str | None = None,
        quota: Quota | None = None,
        dry_run: bool = False,
    ) -> dict[str, Any]:
        """Replace an existing object (404 if absent). A ``metadata.resourceVersion`` in ``obj``
        must equal the current one (409 Conflict); ``uid`` and ``creationTimestamp`` are kept.
        ``name``, when given (the request's URL names the object), must agree with the body's."""
        meta = self._identity(obj, self._api_version(version), name)
        ns = self._namespace_of(meta, namespace)
        name = meta.get("name")
        if not name or not isinstance(name, str):
            raise BadRequestError("metadata.name is required for an update")
        precondition = parse_revision(meta.get("resourceVersion"), "metadata.resourceVersion")
        body = {**obj, "metadata": meta}
        return await self.guaranteed_update(
            name,
            lambda _current: body,
            namespace=ns,
            version=version,
            resource_version=precondition,
            quota=quota,
            dry_run=dry_run,
        )

    async def patch(
        self,
        name: str,
        patch: object,
        *,
        patch_type: str,
        namespace: str | None = None,
        version: str | None = None,
        quota: Quota | None = None,
        dry_run: bool = False,
    ) -> dict[str, Any]:
        """Apply a patch (``patch_type`` ``application/merge-patch+json`` or
        ``application/json-patch+json``, as parsed JSON) to the current object and write the result
        with a revision precondition, retrying on conflicts. The patch is bounded as it applies:
        413 when the result would exceed the object size limit, 422 when it is too deep or does not
        apply, 400 when it is malformed, 415 for another patch type."""
        api_version = self._api_version(version)
        limits = PatchLimits(
            max_bytes=quota.max_object_bytes if quota is not None else DEFAULT_MAX_OBJECT_BYTES,
            max_depth=quota.max_json_depth if quota is not None else _DEFAULT_MAX_DEPTH,
        )
        mutation = parse_patch(patch_type, patch, limits)

        def mutate(current: dict[str, Any]) -> dict[str, Any]:
            patched = mutation(current)
            meta = self._identity(patched, api_version, name)
            if self.spec.namespaced:
                self._namespace_of(meta, namespace)
            patched["metadata"] = meta
            return patched

        return await self.guaranteed_update(
            name, mutate, namespace=namespace, version=version, quota=quota, dry_run=dry_run
        )

    async def guaranteed_update(
        self,
        name: str,
        mutate: Callable[[dict[str, Any]], dict[str, Any]],
        *,
        namespace: str | None = None,
        version: str | None = None,
        resource_version: int | None = None,
        quota: Quota | None = None,
        dry_run: bool = False,
    ) -> dict[str, Any]:
        """Apply ``mutate`` to the current object and write the result with a precondition on the
        revision it was computed from, retrying on conflicts — kube-apiserver's GuaranteedUpdate.

        ``resource_version`` (or a ``metadata.resourceVersion`` that ``mutate`` returns) must match
        the current one, else 409 Conflict.
        """
        api_version = self._api_version(version)
        key = self._ctx.key(namespace, name)
        # A dry run has no write to fail on a stale cached copy: it starts from etcd's own state.
        current, fresh = await (self._from_etcd(key) if dry_run else self._suggested(key))
        for _ in range(_MAX_WRITE_ATTEMPTS):
            if current is None:
                raise NotFoundError.for_object(self.spec.qualified, name)
            if resource_version is not None and resource_version != current.mod_revision:
                if not fresh:  # the cache may lag: only etcd's answer can refuse
                    current, fresh = await self._from_etcd(key)
                    continue
                raise self._conflict(name)
            obj = self._decode_stored(current, name)
            uid, created = obj["metadata"].get("uid"), obj["metadata"].get("creationTimestamp")
            self._served(obj, current.mod_revision, api_version)
            new, meta = self._mutated(obj, mutate, name)
            wanted = parse_revision(meta.pop("resourceVersion", None), "metadata.resourceVersion")
            if wanted is not None and wanted != current.mod_revision:
                if not fresh:
                    current, fresh = await self._from_etcd(key)
                    continue
                raise self._conflict(name)
            # Identity is the key's, whatever the mutation says.
            meta.update(name=name, uid=uid, creationTimestamp=created)
            if self.spec.namespaced:
                meta["namespace"] = namespace
            else:
                meta.pop("namespace", None)
            stored = self._stored(new, api_version, meta)
            value = self._encode(stored, name, quota)
            if value == current.value:
                # A no-op is only a no-op against etcd's state, not against a cached copy.
                if not fresh:
                    current, fresh = await self._from_etcd(key)
                    continue
                return self._served(stored, current.mod_revision, api_version)
            growth = len(value) - len(current.value)
            if dry_run:
                async with self._reserve(quota, objects=0, size=growth):
                    return self._served(stored, current.mod_revision, api_version)
            async with self._reserve(quota, objects=0, size=growth):
                result = await self._etcd.replace(key, value, mod_revision=current.mod_revision)
                if result.succeeded:
                    await self._settle(quota, result.revision)
                    return self._served(stored, result.revision, api_version)
            current, fresh = result.current, True
        raise ConflictError.for_object(self.spec.qualified, name, "too many concurrent writers; try again")

    def _mutated(
        self, obj: dict[str, Any], mutate: Callable[[dict[str, Any]], dict[str, Any]], name: str
    ) -> tuple[dict[str, Any], dict[str, Any]]:
        """``mutate(obj)`` and a copy of its metadata, once Kubernetes would accept that (422
        naming the object otherwise)."""
        try:
            new = mutate(obj)
        except InvalidError as err:
            raise self._ctx.invalid(err, name) from None
        meta = self._metadata(new)
        errors = metadata_errors(meta)
        if errors:
            raise InvalidError.of(errors, kind=self.spec.kind, group=self.spec.group, name=name)
        return new, meta

    async def _suggested(self, key: bytes) -> tuple[KeyValue | None, bool]:
        """The state a write starts from, and whether it is etcd's own (fresh) answer.

        The cached copy saves a read, as kube-apiserver's GuaranteedUpdate does; it may lag, so a
        verdict against it (a failed precondition, a no-op) is only final after :meth:`_from_etcd`.
        """
        cached = self.cache.get(key)
        if cached is not None:
            return cached.kv, False
        return await self._from_etcd(key)

    async def _from_etcd(self, key: bytes) -> tuple[KeyValue | None, bool]:
        _, current = await self._etcd.get(key)
        return current, True

    def _conflict(self, name: str) -> ConflictError:
        return ConflictError.for_object(
            self.spec.qualified,
            name,
            "the object has been modified; please apply your changes to the latest version and try again",
        )

    def _decode_stored(self, kv: KeyValue, name: str) -> dict[str, Any]:
        try:
            obj = orjson.loads(kv.value)
        except orjson.JSONDecodeError:
            obj = None
        if not isinstance(obj, dict):
            raise InternalError(f'{self.spec.qualified} "{name}": stored value is not a JSON object')
        if not isinstance(obj.get("metadata"), dict):
            obj["metadata"] = {}
        return obj

    async def delete(
        self,
        name: str,
        *,
        namespace: str | None = None,
        resource_version: str | int | None = None,
        uid: str | None = None,
        version: str | None = None,
        dry_run: bool = False,
    ) -> dict[str, Any]:
        """Delete an object; returns it with the deletion's resourceVersion (a dry run: as it is).
        ``resource_version`` and ``uid`` are preconditions (409 Conflict when they do not hold);
        404 if absent."""
        api_version = self._api_version(version)
        key = self._ctx.key(namespace, name)
        precondition = parse_revision(resource_version, "preconditions.resourceVersion")
        current, fresh = await (self._from_etcd(key) if dry_run else self._suggested(key))
        for _ in range(_MAX_WRITE_ATTEMPTS):
            if current is None:
                raise NotFoundError.for_object(self.spec.qualified, name)
            obj = self._decode_stored(current, name)
            problem = None
            if precondition is not None and precondition != current.mod_revision:
                problem = (
                    f"Precondition failed: ResourceVersion in precondition: {precondition}, "
                    f"ResourceVersion in object meta: {current.mod_revision}"
                )
            elif uid is not None and uid != obj["metadata"].get("uid"):
                problem = (
                    f"Precondition failed: UID in precondition: {uid}, "
                    f"UID in object meta: {obj['metadata'].get('uid')}"
                )
            if problem is not None:
                if not fresh:
                    current, fresh = await self._from_etcd(key)
                    continue
                raise ConflictError.for_object(self.spec.qualified, name, problem)
            if dry_run:
                return self._served(obj, current.mod_revision, api_version)
            result = await self._etcd.delete(key, mod_revision=current.mod_revision)
            if result.succeeded:
                return self._served(obj, result.revision, api_version)
            current, fresh = result.current, True
        raise ConflictError.for_object(self.spec.qualified, name, "too many concurrent writers; try again")
