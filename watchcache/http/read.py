"""GET and LIST over HTTP: an object's cached bytes, and lists written piece by piece.

A small list is one body. A large one is written in pieces of about 256 KiB, each spliced from the
cache's shared bytes (:meth:`~watchcache.cache.store.Codec.join`) and taken from the tenant's byte
budget before it is built, so no second copy of the answer ever exists. Either is a Table instead
when the client asks for one (:mod:`.tables`), made from the same bytes piece by piece.
"""

from __future__ import annotations

import datetime
from collections.abc import Callable

from aiohttp import web

from ..api.options import ListOptions
from ..api.pages import Piece
from .responses import Responder
from .routes import Target
from .tables import Tables
from .wire import JSON, list_head, list_meta

__all__ = ["PIECE", "Reads"]

PIECE = 256 * 1024
"""About how many bytes of a LIST (or of a watch's backlog) are built and written at a time."""


class Reads:
    """The GET and LIST handlers."""

    def __init__(self, out: Responder, tables: Tables) -> None:
        self._out = out
        self._tables = tables

    async def get(self, request: web.Request, target: Target) -> web.StreamResponse:
        assert target.name is not None
        table = self._tables.answer(target.resource.spec, request.headers.get("Accept"), request.query)
        raw = await target.resource.get_raw(
            target.name,
            namespace=target.namespace,
            resource_version=request.query.get("resourceVersion"),
            version=target.version,
        )
        if table is not None:
            raw = table.single(raw, datetime.datetime.now(datetime.UTC))
        return web.Response(body=raw, content_type=JSON)

    async def list(self, request: web.Request, target: Target) -> web.StreamResponse:
        options = ListOptions.from_query(request.query, namespace=target.namespace, version=target.version)
        spec = target.resource.spec
        table = self._tables.answer(spec, request.headers.get("Accept"), request.query)
        page = await target.resource.list_page(options)
        render: Callable[[Piece], bytes] = Piece.render
        if table is None:
            head = list_head(
                spec.kind,
                spec.api_version(target.version),
                page.revision,
                page.continue_token,
                page.remaining_item_count,
            )
        else:
            head = table.head(list_meta(page.revision, page.continue_token, page.remaining_item_count))
            now = datetime.datetime.now(datetime.UTC)

            def render(piece: Piece) -> bytes:
                return table.rows([piece.page.item(entry) for entry in piece.entries], now)

        pieces = page.pieces(PIECE)
        first = next(pieces, None)
        if first is None or len(first) == len(page.entries):
            # A small list: one body (written by the caller, under the write timeout and budget).
            body = head + (render(first) if first is not None else b"") + b"]}"
            return web.Response(body=body, content_type=JSON)
        out = self._out
        budget = target.admission.bytes if target.admission is not None else None
        response = web.StreamResponse(headers={"Content-Type": JSON})
        response.enable_chunked_encoding()
        await out.write_or_drop(request, response.prepare(request))
        piece: Piece | None = first
        separator = head
        while piece is not None:
            async with out.held(budget, piece.size):
                data = separator + render(piece)
                # A Table's rows may outgrow the objects they show (cells besides each object).
                extra = 0 if table is None else max(0, len(data) - piece.size)
                async with out.held(budget, extra):
                    if not await out.write_or_drop(request, response.write(data)):
                        return response
            separator = b","
            piece = next(pieces, None)
        await out.write_or_drop(request, response.write_eof(b"]}"))
        return response
