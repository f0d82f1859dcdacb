"""The core group's ``namespaces`` over HTTP: GET, LIST and WATCH, read-only (405 for the rest), as
JSON or as Tables (NAME, STATUS) when asked, like every resource.

What a caller sees is :mod:`watchcache.api.namespaces`'s: the namespaces of the resources it may read,
and ``default``. Requests count against the caller's limits as any read does.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime
from collections.abc import Sequence

from aiohttp import web

from ..api.namespaces import NAMESPACES, Namespaces
from ..api.options import ListOptions, WatchOptions, parse_flag
from ..api.resource import Resource
from ..api.storage import Storage
from ..errors import MethodNotAllowedError, StatusError
from ..tenancy.limits import Admission, ByteBudget
from .metrics import Metrics
from .responses import Observation, Responder
from .tables import Tables
from .watch import Watches
from .wire import JSON, list_head, list_meta

__all__ = ["NamespaceHandlers"]

_WRITE_VERBS = {"POST": "create", "PUT": "update", "PATCH": "patch", "DELETE": "delete"}


class NamespaceHandlers:
    """``/api/v1/namespaces[/{name}]``."""

    def __init__(
        self, storage: Storage, metrics: Metrics, out: Responder, watches: Watches, tables: Tables
    ) -> None:
        self._storage = storage
        self._metrics = metrics
        self._out = out
        self._watches = watches
        self._tables = tables

    async def handle(
        self,
        request: web.Request,
        name: str | None,
        *,
        readable: Sequence[Resource],
        admission: Admission | None,
    ) -> web.StreamResponse:
        """Answer a request on the namespaces seen through the ``readable`` resources (the caller's),
        within ``admission`` (the caller's limits; None with authentication off)."""
        done = Observation(self._metrics, request, NAMESPACES)
        try:
            if request.method != "GET":
                verb = _WRITE_VERBS.get(request.method, request.method.lower())
                if verb == "delete" and name is None:
                    verb = "deletecollection"
                raise MethodNotAllowedError(
                    f"{verb} is not allowed on namespaces: watchcache serves them read-only, derived from "
                    "the objects it holds (a namespace is listed while an object lives in it)"
                )
            watch = bool(parse_flag(request.query, "watch"))
            done.verb = "WATCH" if watch else ("GET" if name is not None else "LIST")
            for resource in readable:
                if resource.spec.namespaced:
                    resource.check_ready()  # 503 while etcd is unreachable, else 429 while loading
            view = Namespaces(self._storage, readable)
            budget = admission.bytes if admission is not None else None
            if watch:
                async with admission.watch() if admission is not None else contextlib.nullcontext():
                    response = await self._watch(request, view, name, budget, done)
            else:
                async with admission.slot() if admission is not None else contextlib.nullcontext():
                    response = await self._read(request, view, name)
                    await self._out.deliver(request, response, budget)
            done.finish(response.status)
            return response
        except StatusError as err:
            done.finish(err.code)
            raise
        except asyncio.CancelledError:
            done.finish(499)  # the client went away before an answer
            raise
        finally:
            done.finish(500)

    async def _read(self, request: web.Request, view: Namespaces, name: str | None) -> web.Response:
        query = request.query
        table = self._tables.answer(NAMESPACES, request.headers.get("Accept"), query)
        now = datetime.datetime.now(datetime.UTC)
        if name is not None:
            raw = await view.get(name, resource_version=query.get("resourceVersion"))
            return web.Response(body=raw if table is None else table.single(raw, now), content_type=JSON)
        page = await view.list(ListOptions.from_query(query, namespace=None, version="v1"))
        if table is None:
            head = list_head("Namespace", "v1", page.revision, page.continue_token, page.remaining_item_count)
            items = b",".join(page.raw_items)
        else:
            head = table.head(list_meta(page.revision, page.continue_token, page.remaining_item_count))
            items = table.rows(page.raw_items, now)
        return web.Response(body=head + items + b"]}", content_type=JSON)

    async def _watch(
        self,
        request: web.Request,
        view: Namespaces,
        name: str | None,
        budget: ByteBudget | None,
        done: Observation,
    ) -> web.StreamResponse:
        options = WatchOptions.from_query(request.query, namespace=None, version="v1", name=name)
        table = self._tables.answer(NAMESPACES, request.headers.get("Accept"), request.query)
        timeout = self._watches.timeout(request)
        watch = view.watch(options, bookmark_interval=self._storage.settings.bookmark_interval)
        await watch.open()  # errors (400, 504) are still plain responses
        try:
            return await self._watches.stream(
                request, watch, budget=budget, observation=done, timeout=timeout, table=table
            )
        finally:
            watch.close()
